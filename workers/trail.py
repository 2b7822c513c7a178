"""The per-recording audit records: one create-only object per action, locked like the recording."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from recvault.storage.base import ObjectStore, Retention
from recvault.workers import documents as docs


def write_audit(store: ObjectStore, prefix: str, recording_sid: str, action: str, details: dict[str, Any],
                retention: Retention | None, when: datetime) -> None:
    """Append one create-only audit record; the key's timestamp makes it unique."""
    record = {"recording_sid": recording_sid, "action": action, "at": when.isoformat(), **details}
    store.put_bytes(docs.audit_key(prefix, recording_sid, action, when), docs.json_line(record),
                    content_type="application/json", retention=retention)
