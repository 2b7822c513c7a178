"""Whether an archived recording still matches its metadata document: one rule for every caller.

The audit, the check before a Twilio delete and a redelivered task that finds its media
already stored all ask the same question, so they ask it here.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

from recvault.audit.media_facts import HEADER_BYTES
from recvault.storage.base import ObjectStore, StoredObject


@dataclass(frozen=True)
class Verification:
    """The media's current state at the store, and what is wrong with it (None: intact)."""

    media: StoredObject | None
    problem: str | None

    @property
    def intact(self) -> bool:
        return self.problem is None


def stored_sha256(store: ObjectStore, key: str) -> tuple[str, bytes]:
    """The SHA-256 (hex) of the object's bytes, streamed, and its first HEADER_BYTES."""
    digest, header = hashlib.sha256(), b""
    for chunk in store.iter_bytes(key):
        if len(header) < HEADER_BYTES:
            header += chunk[: HEADER_BYTES - len(header)]
        digest.update(chunk)
    return digest.hexdigest(), header


def verify_archived(store: ObjectStore, document: dict[str, Any], *, deep: bool = False) -> Verification:
    """Present, with the size and S3 checksum the document recorded; with `deep`, the same
    full SHA-256 recomputed from the stored bytes."""
    current = store.head(str(document.get("media_key") or ""))
    if current is None:
        return Verification(None, "media missing")
    if current.size != document.get("media_size"):
        return Verification(current, f"size {current.size} != {document.get('media_size')}")
    if current.checksum_sha256 != document.get("media_checksum_sha256"):
        return Verification(current, "S3 checksum differs from the document")
    if deep and stored_sha256(store, current.key)[0] != document.get("media_sha256"):
        return Verification(current, "SHA-256 of stored bytes differs from the document")
    return Verification(current, None)
