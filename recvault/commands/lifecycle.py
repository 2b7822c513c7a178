"""`recvault lifecycle`: S3 lifecycle rules derived from the policy, as JSON, optionally applied to the bucket."""

from __future__ import annotations

import argparse
import json
import sys
from datetime import UTC, datetime
from pathlib import Path

from recvault.commands.options import actor_of, add_actor, store_for
from recvault.settings import Settings

HELP = "write S3 lifecycle rules derived from the policy (expiry per rule); --apply puts them on the bucket"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--output", type=Path, metavar="FILE", help="write the JSON here (default: standard output)")
    parser.add_argument("--apply", action="store_true",
                        help="put the rules on the bucket (PutBucketLifecycleConfiguration), keeping rules of others")
    parser.add_argument("--policy", type=Path, metavar="FILE", help="this policy file (default: RECVAULT_POLICY_FILE)")
    add_actor(parser)


def run(args: argparse.Namespace, settings: Settings) -> int:
    from recvault.compliance.lifecycle import apply_lifecycle, lifecycle_rules
    from recvault.compliance.policy import Policy

    policy = Policy.load(args.policy) if args.policy else Policy.from_settings(settings)
    rules = lifecycle_rules(policy, settings.s3_prefix)
    text = json.dumps({"Rules": rules}, indent=2) + "\n"
    if args.output:
        args.output.write_text(text)
    elif not args.apply:
        sys.stdout.write(text)
    if args.apply:
        store, now = store_for(settings), datetime.now(UTC)
        applied = apply_lifecycle(store, settings.s3_prefix, rules, actor=actor_of(args), now=now,
                                  policy_version=getattr(policy, "version", None))
        print(f"lifecycle applied to {settings.s3_bucket}: {len(rules)} recvault rule(s), "
              f"{len(applied) - len(rules)} other rule(s) kept", file=sys.stderr)
    return 0
