"""The per-recording audit records: one create-only object per action, locked like the recording."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from recvault.layout import SYSTEM_SID, audit_record
from recvault.storage.base import ObjectStore, Retention


def write_audit(store: ObjectStore, prefix: str, recording_sid: str, action: str, details: dict[str, Any],
                retention: Retention | None, when: datetime, *, actor: str | None = None) -> None:
    """Append one create-only audit record; the key's timestamp makes it unique."""
    if actor is not None:
        details = {**details, "actor": actor}
    key, body = audit_record(prefix, recording_sid, action, details, when)
    store.put_bytes(key, body, content_type="application/json", retention=retention)


def write_system_audit(store: ObjectStore, prefix: str, action: str, details: dict[str, Any], when: datetime, *,
                       actor: str | None = None, retention: Retention | None = None) -> None:
    """Append an audit record for an action that belongs to no one recording (policy loaded, lifecycle, purge runs)."""
    write_audit(store, prefix, SYSTEM_SID, action, details, retention, when, actor=actor)
