"""Prove every archived recording is present and unchanged: media against its document."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass

from recvault.storage.base import ObjectStore


@dataclass
class Finding:
    """One archived recording's audit outcome."""

    recording_sid: str
    media_key: str
    problem: str | None


def audit_archive(store: ObjectStore, prefix: str, *, date: str | None = None, deep: bool = False) -> list[Finding]:
    """Check each metadata document's media: present, same size, same S3 checksum, and
    with `deep` the same full SHA-256 recomputed from the stored bytes."""
    findings = []
    root = f"{prefix}metadata/" + (f"date={date}/" if date else "")
    for key in store.list_keys(root):
        document = json.loads(store.get_bytes(key))
        media_key = document.get("media_key", "")
        current = store.head(media_key)
        problem = None
        if current is None:
            problem = "media missing"
        elif current.size != document.get("media_size"):
            problem = f"size {current.size} != {document.get('media_size')}"
        elif current.checksum_sha256 != document.get("media_checksum_sha256"):
            problem = "S3 checksum differs from the document"
        elif deep:
            digest = hashlib.sha256()
            for chunk in store.iter_bytes(media_key):
                digest.update(chunk)
            if digest.hexdigest() != document.get("media_sha256"):
                problem = "SHA-256 of stored bytes differs from the document"
        findings.append(Finding(document.get("sid", key), media_key, problem))
    return findings
