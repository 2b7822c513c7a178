"""`recvault erase RE… --reason R`: a data-subject erasure, refused while retention or a hold applies."""

from __future__ import annotations

import argparse
import sys
from datetime import UTC, datetime

from recvault.commands.options import actor_of, add_actor, day, reason, recording_sid
from recvault.settings import Settings

HELP = "erase recordings (every version) when no retention or legal hold protects them; else record and refuse"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("recordings", nargs="*", type=recording_sid, metavar="RE…")
    parser.add_argument("--reason", type=reason, help="why (e.g. the request's reference); required with RE…")
    parser.add_argument("--requested-by", default=None, metavar="WHO",
                        help="who asked, for the tombstone: a role or request reference, never the data "
                             "subject's name (default: the actor)")
    parser.add_argument("--when-allowed", action="store_true",
                        help="if refused now, queue the erasure; the scheduled task runs it once nothing protects it")
    parser.add_argument("--date", type=day, metavar="D",
                        help="the recordings' day (YYYY-MM-DD): found at once instead of searched for, day by day")
    parser.add_argument("--run-due", action="store_true",
                        help="run the queued erasures whose locks have ended (what beat's hourly task does)")
    add_actor(parser)


def run(args: argparse.Namespace, settings: Settings) -> int:
    from recvault.audit.seal import seal_retention
    from recvault.commands.options import store_for
    from recvault.compliance.erasure import erase, run_due
    from recvault.compliance.policy import Policy

    if bool(args.recordings) == args.run_due:
        print("recvault: erase: name the recordings (RE…) or give --run-due", file=sys.stderr)
        return 2
    if args.recordings and not args.reason:
        print("recvault: erase: --reason is required: say why (e.g. the request's reference)", file=sys.stderr)
        return 2
    store, actor = store_for(settings), actor_of(args)
    # Tombstones are kept like the seals: COMPLIANCE, as long as any recording may be.
    locked = seal_retention(Policy.from_settings(settings).longest_retention_days(), datetime.now(UTC))
    if args.run_due:
        outcomes = run_due(store, settings.s3_prefix, datetime.now(UTC), record_retention=locked)
        for outcome in outcomes:
            waiting = f" (possible {outcome.refusal.possible_from})" if outcome.refusal else ""
            print(f"{outcome.status} {outcome.recording_sid}{waiting}" + (f": {outcome.problem}"
                                                                          if outcome.problem else ""))
        if not outcomes:
            print("no queued erasures")
        return 0
    refused = missing = 0
    for sid in args.recordings:
        outcome = erase(store, settings.s3_prefix, sid, reason=args.reason, requested_by=args.requested_by or actor,
                        actor=actor, now=datetime.now(UTC), when_allowed=args.when_allowed, date=args.date,
                        record_retention=locked)
        if outcome.status == "erased":
            print(f"erased {sid}: {outcome.objects} object version(s); tombstone kept")
        elif outcome.status == "mismatch":
            refused += 1
            print(f"recvault: erase: refused, nothing deleted: {outcome.problem}", file=sys.stderr)
        elif outcome.status == "not-found":
            missing += 1
            print(f"recvault: erase: {sid} is not in the archive", file=sys.stderr)
        elif outcome.status == "queued":
            # Done as asked: the request is recorded and the scheduled task erases it once nothing protects it.
            assert outcome.refusal is not None
            print(f"queued {sid}: not erasable now ({'; '.join(outcome.refusal.reasons)}); "
                  f"erased by the scheduled task from {outcome.refusal.possible_from}")
        else:
            assert outcome.refusal is not None
            refused += 1
            print(f"refused {sid}: {'; '.join(outcome.refusal.reasons)}. "
                  f"Possible {outcome.refusal.possible_from}; --when-allowed queues it to run then", file=sys.stderr)
    return 1 if refused or missing else 0
