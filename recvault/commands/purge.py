"""`recvault purge`: delete what has expired, for stores without S3 lifecycle support."""

from __future__ import annotations

import argparse
import sys
from datetime import UTC, datetime

from recvault.commands.options import actor_of, add_actor, day, store_for
from recvault.settings import Settings

HELP = "delete recordings whose retention ended (no hold, no lock), every version, leaving tombstones"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--dry-run", action="store_true", help="list what would be purged; delete nothing")
    parser.add_argument("--date-before", type=day, metavar="D", help="only recordings of days before D")
    add_actor(parser)


def run(args: argparse.Namespace, settings: Settings) -> int:
    from recvault.audit.seal import seal_retention
    from recvault.compliance.policy import Policy
    from recvault.compliance.purge import purge

    policy = Policy.from_settings(settings)
    now = datetime.now(UTC)
    # Tombstones are kept like the seals: COMPLIANCE, as long as any recording may be.
    report = purge(store_for(settings), settings.s3_prefix, now=now, policy=policy,
                   date_before=args.date_before, dry_run=args.dry_run, actor=actor_of(args),
                   record_retention=seal_retention(policy.longest_retention_days(), now))
    for outcome in report.outcomes:
        if outcome.problem is not None:
            print(f"kept {outcome.recording_sid}: refused, nothing deleted: {outcome.problem}")
        elif outcome.refusal is not None:
            print(f"kept {outcome.recording_sid}: {'; '.join(outcome.refusal.reasons)}")
        else:
            print(f"{outcome.status} {outcome.recording_sid}: {outcome.objects} object version(s)")
    if not report.outcomes:
        print("no recordings due for purge")
    summary = report.summary()
    print(", ".join(f"{k.replace('_', ' ')} {v}" for k, v in summary.items() if k != "dry_run")
          + (" (dry run)" if args.dry_run else ""), file=sys.stderr)
    return 0
