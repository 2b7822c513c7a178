"""`recvault init-bucket`: create or check the archive bucket, and say what changed."""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING

from recvault import layout
from recvault.settings import Settings

if TYPE_CHECKING:
    from recvault.compliance.policy import Policy
    from recvault.storage.s3_setup import BucketSetup

# A role or user in any partition (aws, aws-cn, aws-us-gov); the account is 12 digits.
PRINCIPAL_ARN = re.compile(r"arn:aws(?:-[a-z-]+)?:iam::\d{12}:(?:role|user)/[\w+=,.@/-]+")
HELP = ("create or check the archive bucket: Object Lock with the policy's default retention, encryption, "
        "no public access, cleanup of unfinished uploads, a bucket policy that keeps create-only folders create-only")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--check", action="store_true",
                        help="change nothing; report what would change and exit 1 if anything would")
    parser.add_argument("--worker-role-arn", action="append", default=[], metavar="ARN", type=principal_arn,
                        help="the workers' IAM role (repeatable): the bucket policy denies it every delete in "
                             "the create-only folders; without it, a deny an earlier run set is kept")


def principal_arn(value: str) -> str:
    """An IAM principal's ARN (`arn:aws:iam::111122223333:role/recvault-worker`), else a usage error."""
    if not PRINCIPAL_ARN.fullmatch(value):
        raise argparse.ArgumentTypeError(f"{value!r} is not an IAM role or user ARN "
                                         "(arn:aws:iam::<account>:role/<name>)")
    return value


def bucket_setup(settings: Settings, policy: Policy, *, workers: Sequence[str] = ()) -> BucketSetup:
    """What the bucket should be: the policy's default rule as its default retention, RECVAULT_S3_KMS_KEY_ID's
    key (else AES256) as its default encryption, the create-only folders under RECVAULT_S3_PREFIX closed to
    any other write and to deletes by `workers` (role ARNs). `recvault up` sets its embedded bucket up with it too."""
    from recvault.storage.s3_setup import BucketSetup

    return BucketSetup(default_retention=policy.default_lock(), kms_key_id=settings.s3_kms_key_id,
                       create_only_folders=tuple(settings.s3_prefix + folder for folder in layout.CREATE_ONLY_FOLDERS),
                       workers=tuple(workers))


def run(args: argparse.Namespace, settings: Settings) -> int:
    from recvault.compliance.policy import Policy
    from recvault.storage.s3 import S3Store

    policy = Policy.from_settings(settings)
    setup = bucket_setup(settings, policy, workers=args.worker_role_arn)
    steps = S3Store.from_settings(settings).init_bucket(setup, apply=not args.check)
    for step in steps:
        print(step.line())
    unlocked = policy.rules_that_lock_nothing()
    if setup.default_retention and unlocked:
        print(f"note: policy rule(s) {', '.join(repr(name) for name in unlocked)} lock nothing themselves, "
              "but the bucket's default retention locks every object written without a lock of its own")
    changed = [step for step in steps if step.state in ("created", "changed", "would change")]
    verb = "would change" if args.check else "changed"
    print(f"bucket {settings.s3_bucket}: {len(changed)} setting(s) {verb}", file=sys.stderr)
    lock = next((step for step in steps if step.feature == "object lock"), None)
    if lock is not None and lock.state == "not supported" and policy.rules_that_lock():
        print("recvault: init-bucket: this store cannot lock objects, but the policy asks for retention",
              file=sys.stderr)
        return 1
    return 1 if args.check and changed else 0
