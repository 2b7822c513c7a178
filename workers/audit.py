"""Prove every archived recording is present and unchanged: media against its document."""

from __future__ import annotations

import json
from dataclasses import dataclass

from recvault.storage.base import ObjectStore
from recvault.workers.verify import verify_archived


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
        problem = verify_archived(store, document, deep=deep).problem
        findings.append(Finding(document.get("sid", key), document.get("media_key", ""), problem))
    return findings
