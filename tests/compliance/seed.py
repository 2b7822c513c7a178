"""Recordings laid out in the bucket as the archive writes them, for the hold, erasure and purge tests."""

from __future__ import annotations

import hashlib
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from recvault import layout
from recvault.audit import chain
from recvault.audit.write import write_audit
from recvault.storage.base import Retention
from recvault.storage.s3 import S3Store

MEDIA = b"RIFF" + bytes(4000)


def sid(kind: str) -> str:
    return kind + uuid.uuid4().hex


@dataclass
class Seeded:
    sid: str
    account_sid: str
    call_sid: str
    date: str
    media_key: str
    metadata_key: str
    event_key: str

    @property
    def keys(self) -> list[str]:
        return [self.media_key, self.metadata_key, self.event_key]


def seed(store: S3Store, *, prefix: str = "", date: str = "2026-11-24", account_sid: str | None = None,
         call_sid: str | None = None, labels: dict[str, str] | None = None, lock: Retention | None = None,
         recorded_until: datetime | None = None, rule: str = "default") -> Seeded:
    """One archived recording: media, metadata document, an event document and its `archived` audit record.

    `lock` is the Object Lock put on the objects; `recorded_until` the retain-until the document states
    (default: the lock's), so a test can make a document that says "expired" over objects still locked.
    """
    recording = sid("RE")
    account, call = account_sid or sid("AC"), call_sid or sid("CA")
    now = datetime.now(UTC)
    media_key = layout.media_key(prefix, date, account, recording, "wav")
    stored = store.put_bytes(media_key, MEDIA, content_type="audio/x-wav", tags={"recvault-policy": rule},
                             retention=lock)
    until = recorded_until or (lock.until if lock else None)
    document = {
        "sid": recording, "account_sid": account, "call_sid": call, "status": "completed", "duration": "1",
        "media_key": media_key, "media_version_id": stored.version_id, "media_size": len(MEDIA),
        "media_sha256": hashlib.sha256(MEDIA).hexdigest(), "archived_at": (now - timedelta(days=400)).isoformat(),
        "policy": rule, "retention_mode": lock.mode if lock and lock.mode else ("GOVERNANCE" if until else None),
        "retain_until": until.isoformat() if until else None, "legal_hold": bool(lock and lock.legal_hold),
        "labels": labels or {}, "callback": {"RecordingSid": recording, "AccountSid": account},
    }
    metadata_key = layout.metadata_key(prefix, date, recording)
    store.put_bytes(metadata_key, layout.json_line(document), content_type="application/json", retention=lock)
    event_key = layout.event_key(prefix, date, recording, "in-progress")
    store.put_bytes(event_key, layout.json_line({"sid": recording, "status": "in-progress"}),
                    content_type="application/json", retention=lock)
    write_audit(store, prefix, recording, "archived", {"media_key": media_key}, lock, now)
    return Seeded(recording, account, call, date, media_key, metadata_key, event_key)


def audit_trail(store: S3Store, prefix: str, recording_sid: str | None = None,
                action: str | None = None) -> list[tuple[str, dict]]:
    """(key, record) of the audit entries under `prefix`, flattened as {recording_sid, action, actor,
    at, **details}, chosen by their content (not their key's shape)."""
    found = []
    for key in store.list_keys(prefix + layout.AUDIT_CHAINS):
        entry = chain.Entry.parse(key, store.get_bytes(key))
        record = {"recording_sid": entry.chain, "action": entry.action, "actor": entry.actor, "at": entry.at,
                  **entry.details}
        if recording_sid in (None, entry.chain) and action in (None, entry.action):
            found.append((key, record))
    return found


def soon(seconds: float) -> datetime:
    return datetime.now(UTC) + timedelta(seconds=seconds)
