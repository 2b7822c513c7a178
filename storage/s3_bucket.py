"""The archive bucket: used as it is when it exists, created with Object Lock only on request."""

from __future__ import annotations

import logging
from typing import Any

from recvault.errors import StorageRejected
from recvault.storage.s3_errors import NOT_FOUND, s3_errors

log = logging.getLogger(__name__)

# us-east-1 is the one region that refuses an explicit LocationConstraint.
DEFAULT_REGION = "us-east-1"


def ensure_bucket(client: Any, bucket: str, *, create: bool) -> bool:
    """Check (or create) `bucket`; return whether it has Object Lock (callers decide if it must)."""
    found = None
    with s3_errors(f"head bucket {bucket}", ignore=NOT_FOUND):
        found = client.head_bucket(Bucket=bucket)
    if found is None:
        if not create:
            raise StorageRejected(
                f"bucket {bucket!r} does not exist; create it with Object Lock "
                "or point RECVAULT_S3_BUCKET at one that does"
            )
        _create_locked(client, bucket)
    return object_lock_enabled(client, bucket)


def _create_locked(client: Any, bucket: str) -> None:
    params: dict[str, Any] = {"Bucket": bucket, "ObjectLockEnabledForBucket": True}
    region = client.meta.region_name
    if region != DEFAULT_REGION:
        params["CreateBucketConfiguration"] = {"LocationConstraint": region}
    # Another process may have just created it: that is as good as creating it.
    ours = frozenset({"BucketAlreadyOwnedByYou"})
    with s3_errors(f"create bucket {bucket}", ignore=ours):
        client.create_bucket(**params)
    log.info("bucket ready with Object Lock", extra={"bucket": bucket})


def object_lock_enabled(client: Any, bucket: str) -> bool:
    """Whether the bucket was created with Object Lock (versioned, lockable)."""
    answer = None
    missing = frozenset({"ObjectLockConfigurationNotFoundError"})
    with s3_errors(f"get Object Lock configuration of {bucket}", ignore=missing):
        answer = client.get_object_lock_configuration(Bucket=bucket)
    config = (answer or {}).get("ObjectLockConfiguration", {})
    return bool(config.get("ObjectLockEnabled") == "Enabled")
