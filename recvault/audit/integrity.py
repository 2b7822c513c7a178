"""Whether an archived recording's media still matches its metadata document: one rule for every caller.

`recvault audit verify` and the check before a Twilio delete ask the same question, so they
ask it here: `media_problems` lists every difference, `verify_archived` answers yes or no.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any

from recvault.storage.base import ObjectStore, StoredObject
from recvault.wav import HEADER_PROBE_BYTES


@dataclass(frozen=True)
class Problem:
    """One way the stored media differs from its document, with what was recorded and found."""

    what: str
    evidence: dict[str, Any] = field(default_factory=dict)
    # A kind of recvault.audit.findings.KINDS: another version in place, or other bytes.
    kind: str = "altered-media"


@dataclass(frozen=True)
class Verification:
    """The media's current state at the store, and what is wrong with it (None: intact)."""

    media: StoredObject | None
    problem: str | None

    @property
    def intact(self) -> bool:
        return self.problem is None


def stored_sha256(store: ObjectStore, key: str, version_id: str | None = None) -> tuple[str, bytes]:
    """The SHA-256 (hex) of the object's bytes (the current version, or `version_id`), streamed, and
    its first HEADER_PROBE_BYTES."""
    digest, header = hashlib.sha256(), b""
    for chunk in store.iter_version(key, version_id) if version_id else store.iter_bytes(key):
        if len(header) < HEADER_PROBE_BYTES:
            header += chunk[: HEADER_PROBE_BYTES - len(header)]
        digest.update(chunk)
    return digest.hexdigest(), header


def media_problems(store: ObjectStore, document: dict[str, Any], current: StoredObject, *,
                   rehash: bool) -> list[Problem]:
    """How `current` (the media's current version) differs from `document`; with `rehash`, its
    SHA-256 is recomputed from the stored bytes too."""
    problems = []
    if document.get("media_version_id") and current.version_id != document["media_version_id"]:
        problems.append(Problem("the current media version is not the one archived",
                                {"archived_version_id": document["media_version_id"],
                                 "current_version_id": current.version_id}, "substituted-media"))
    if current.size != document.get("media_size"):
        problems.append(Problem("media size differs from the document",
                                {"recorded": document.get("media_size"), "found": current.size}))
    if current.checksum_sha256 != document.get("media_checksum_sha256"):
        problems.append(Problem("S3 checksum differs from the document",
                                {"recorded": document.get("media_checksum_sha256"),
                                 "found": current.checksum_sha256}))
    if rehash:
        found, _ = stored_sha256(store, current.key, current.version_id)
        if found != document.get("media_sha256"):
            problems.append(Problem("SHA-256 of the stored bytes differs from the document",
                                    {"recorded": document.get("media_sha256"), "found": found}))
    return problems


def verify_archived(store: ObjectStore, document: dict[str, Any]) -> Verification:
    """Present, the version archived, with the size and S3 checksum the document recorded."""
    current = store.head(str(document.get("media_key") or ""))
    if current is None:
        return Verification(None, "media missing")
    problems = media_problems(store, document, current, rehash=False)
    return Verification(current, problems[0].what if problems else None)
