"""Where S3 keeps an object: its storage class and the KMS key it is encrypted with."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

# Every storage class S3's PutObject accepts.
STORAGE_CLASSES = frozenset({
    "STANDARD", "REDUCED_REDUNDANCY", "STANDARD_IA", "ONEZONE_IA", "INTELLIGENT_TIERING",
    "GLACIER", "DEEP_ARCHIVE", "OUTPOSTS", "GLACIER_IR", "SNOW", "EXPRESS_ONEZONE",
})
# The ones an archive can be written to directly. GLACIER and DEEP_ARCHIVE need a restore
# before an object can be read, and recvault reads what it archived back (to verify it before
# a Twilio delete, for `audit --deep`, for the documents' queries); OUTPOSTS, SNOW and
# EXPRESS_ONEZONE are for other kinds of bucket, none of which has Object Lock.
WRITABLE_CLASSES = frozenset({
    "STANDARD", "REDUCED_REDUNDANCY", "STANDARD_IA", "ONEZONE_IA", "INTELLIGENT_TIERING", "GLACIER_IR",
})
# A KMS key as S3 takes it: a key id (UUID or multi-Region mrk-…), an alias, or either's ARN.
KMS_KEY = re.compile(
    r"(?:arn:aws[a-z-]*:kms:[a-z0-9-]+:\d{12}:)?"
    r"(?:key/)?(?:[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}|mrk-[0-9a-f]{32})"
    r"|(?:arn:aws[a-z-]*:kms:[a-z0-9-]+:\d{12}:)?alias/[A-Za-z0-9/_-]{1,256}"
)


def storage_class_problem(value: str) -> str | None:
    """Why `value` cannot be an archive's storage class, or None when it can."""
    if value not in STORAGE_CLASSES:
        return f"{value!r} is not an S3 storage class (one of {', '.join(sorted(WRITABLE_CLASSES))})"
    if value not in WRITABLE_CLASSES:
        return (f"{value!r} cannot be read without a restore or has no Object Lock; recvault reads archived "
                f"objects back to verify them (use one of {', '.join(sorted(WRITABLE_CLASSES))}, and a "
                "lifecycle transition for colder storage)")
    return None


def kms_key_problem(value: str) -> str | None:
    """Why `value` is not a KMS key id, alias or ARN, or None when it is."""
    if not KMS_KEY.fullmatch(value):
        return f"{value[:80]!r} is not a KMS key id, alias/…, or key or alias ARN"
    return None


@dataclass(frozen=True)
class Placement:
    """Storage class and SSE-KMS key for a write; None keeps the bucket's defaults."""

    storage_class: str | None = None
    kms_key_id: str | None = None

    def params(self) -> dict[str, Any]:
        """The PutObject / CreateMultipartUpload parameters that say so."""
        params: dict[str, Any] = {}
        if self.storage_class:
            params["StorageClass"] = self.storage_class
        if self.kms_key_id:
            params["ServerSideEncryption"] = "aws:kms"
            params["SSEKMSKeyId"] = self.kms_key_id
        return params
