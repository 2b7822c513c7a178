"""Request parameters and HEAD answers for S3 writes: content type, metadata, tags, Object Lock."""

from __future__ import annotations

from datetime import UTC
from typing import Any

from recvault.storage.base import Retention
from recvault.storage.placement import Placement
from recvault.storage.tags import encode_tagging

# S3 caps user metadata (x-amz-meta-* names and values, UTF-8) at 2 KB per object.
MAX_METADATA_BYTES = 2048


def write_params(
    content_type: str,
    metadata: dict[str, str] | None,
    tags: dict[str, str] | None,
    retention: Retention | None,
    placement: Placement | None = None,
) -> dict[str, Any]:
    """Parameters shared by PutObject and CreateMultipartUpload."""
    metadata = dict(metadata or {})
    size = sum(len(name.encode()) + len(value.encode()) for name, value in metadata.items())
    if size > MAX_METADATA_BYTES:
        raise ValueError(f"user metadata is {size} bytes; S3 allows {MAX_METADATA_BYTES}")
    params: dict[str, Any] = {"ContentType": content_type, "Metadata": metadata}
    if tags:
        params["Tagging"] = encode_tagging(tags)
    if retention is not None:
        if retention.mode is not None:
            if retention.until is None or retention.until.tzinfo is None:
                raise ValueError("retention with a mode needs a timezone-aware `until`")
            params["ObjectLockMode"] = retention.mode
            params["ObjectLockRetainUntilDate"] = retention.until.astimezone(UTC)
        if retention.legal_hold:
            params["ObjectLockLegalHoldStatus"] = "ON"
    if placement is not None:
        params.update(placement.params())
    return params


def retention_from_head(answer: dict[str, Any]) -> Retention | None:
    """The Object Lock state a HEAD reported, or None when there is none."""
    mode = answer.get("ObjectLockMode")
    hold = answer.get("ObjectLockLegalHoldStatus") == "ON"
    if mode is None and not hold:
        return None
    return Retention(mode=mode, until=answer.get("ObjectLockRetainUntilDate"), legal_hold=hold)

