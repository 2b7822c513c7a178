"""The audit trail as the workers and commands write it: hash-chained entries (see recvault.ops.trail).

Each recording has a chain of its own, so archiving never waits on another recording's
entries; actions that belong to no recording go to the day's system chain.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from recvault import chain, layout
from recvault.ops.trail import append, read_chain
from recvault.storage.base import ObjectStore, Retention

# An attempt writes its `archived` entry milliseconds after its document; a document older than
# this with no entry was left by an attempt that died in between (a live one is never handed
# out again this soon: see the keeper's visibility timeout).
ENTRY_GRACE = timedelta(seconds=60)


def _usually_first(action: str) -> bool:
    """Actions that most often open a recording's chain: tried as entry 1 without a read."""
    return action == "archived" or action.startswith("event-")


def write_audit(store: ObjectStore, prefix: str, recording_sid: str, action: str, details: dict[str, Any],
                retention: Retention | None, when: datetime, *, actor: str | None = None) -> None:
    """Append one entry to the recording's chain, locked with `retention` (the recording's)."""
    append(store, prefix, recording_sid, action, details, retention, when, actor=actor,
           likely_first=_usually_first(action))


def write_system_audit(store: ObjectStore, prefix: str, action: str, details: dict[str, Any], when: datetime, *,
                       actor: str | None = None, retention: Retention | None = None) -> None:
    """Append one entry to the day's system chain (policy loaded, lifecycle written, purge run, …)."""
    append(store, prefix, chain.system_chain(when.astimezone(UTC).strftime("%Y-%m-%d")), action, details,
           retention, when, actor=actor)


def archived_details(document: dict[str, Any]) -> dict[str, Any]:
    """What an `archived` entry says, from the metadata document."""
    return {"media_key": document.get("media_key"), "sha256": document.get("media_sha256"),
            "size": document.get("media_size"), "media_source": document.get("media_source"),
            "media_check": document.get("media_check"), "labels": document.get("labels") or {},
            "policy": document.get("policy"), "policy_version": document.get("policy_version")}


def ensure_archived_entry(store: ObjectStore, prefix: str, document: dict[str, Any], now: datetime) -> bool:
    """Write the `archived` entry an attempt that died after its document never wrote; True if written."""
    sid = str(document.get("sid"))
    archived_at = datetime.fromisoformat(str(document.get("archived_at") or now.isoformat()))
    if now - archived_at < ENTRY_GRACE or any(e.action == "archived" for e in read_chain(store, prefix, sid)[0]):
        return False
    mode, until, hold = layout.retention_fields(document)
    retention = Retention(mode=mode, until=until, legal_hold=hold) if until and until > now else Retention(
        legal_hold=hold)
    write_audit(store, prefix, sid, "archived", {**archived_details(document), "recorded_late": True}, retention, now)
    return True
