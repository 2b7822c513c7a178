"""The audit trail as the workers and commands write it: hash-chained entries (see recvault.audit.append).

Each recording has a chain of its own, so archiving never waits on another recording's
entries; actions that belong to no recording go to the day's system chain.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from recvault.audit import chain
from recvault.audit.append import append, read_chain
from recvault.audit.vouched import document_sha256
from recvault.documents import retention_of
from recvault.errors import TransientError
from recvault.storage.base import ObjectStore, Retention

# An attempt writes its `archived` entry milliseconds after its document; a document older than
# this with no entry was left by an attempt that died in between. A younger one may belong to an
# attempt still running (a duplicate delivery), or to one killed moments ago whose message came
# back after the visibility timeout: the later attempt waits, then retries until this has passed.
ENTRY_GRACE = timedelta(seconds=60)
# How long a later attempt waits for that entry, and how often it looks.
ENTRY_WAIT = 5.0
ENTRY_POLL = 0.25


def _usually_first(action: str) -> bool:
    """Actions that most often open a recording's chain: tried as entry 1 without a read."""
    return action == "archived" or action.startswith("event-")


def write_audit(store: ObjectStore, prefix: str, recording_sid: str, action: str, details: dict[str, Any],
                retention: Retention | None, when: datetime, *, actor: str | None = None,
                alongside: Callable[[], object] | None = None) -> None:
    """Append one entry to the recording's chain, locked with `retention` (the recording's).

    `alongside`: the write this entry records, made first (see recvault.audit.append.append).
    """
    append(store, prefix, recording_sid, action, details, retention, when, actor=actor,
           likely_first=_usually_first(action), alongside=alongside)


def write_system_audit(store: ObjectStore, prefix: str, action: str, details: dict[str, Any], when: datetime, *,
                       actor: str | None = None, retention: Retention | None = None) -> None:
    """Append one entry to the day's system chain (policy loaded, lifecycle written, purge run, …)."""
    append(store, prefix, chain.system_chain(when.astimezone(UTC).strftime("%Y-%m-%d")), action, details,
           retention, when, actor=actor)


def stamped(run_started: datetime) -> datetime:
    """The time for an entry a long command (a hold over thousands of recordings, a purge) writes
    now: when it is written, not when the command began, so that it falls in the day whose seal
    will cover it (the sealer runs a little after midnight)."""
    return max(run_started, datetime.now(UTC))


def archived_details(document: dict[str, Any]) -> dict[str, Any]:
    """What an `archived` entry says, from the metadata document: the media version and hash it
    archived, and the hash of the document itself, which `audit verify` holds them to."""
    return {"media_key": document.get("media_key"), "media_version_id": document.get("media_version_id"),
            "document_sha256": document_sha256(document), "sha256": document.get("media_sha256"),
            "size": document.get("media_size"), "media_source": document.get("media_source"),
            "media_check": document.get("media_check"), "labels": document.get("labels") or {},
            "policy": document.get("policy"), "policy_version": document.get("policy_version"),
            "tags": document.get("tags") or {}, "retention_mode": document.get("retention_mode"),
            "retain_until": document.get("retain_until"), "legal_hold": bool(document.get("legal_hold"))}


def ensure_archived_entry(store: ObjectStore, prefix: str, document: dict[str, Any], now: datetime, *,
                          wait: float = ENTRY_WAIT, sleep: Callable[[float], None] = time.sleep) -> bool:
    """Write the `archived` entry an attempt that died after its document never wrote; True if written.

    Within ENTRY_GRACE of the document the attempt that wrote it may still be about to write its
    entry (a duplicate delivery running alongside): wait a little for it, and if it does not come,
    raise TransientError so the task looks again later rather than settle without the entry.
    """
    sid = str(document.get("sid"))
    if _has_archived_entry(store, prefix, sid):
        return False
    archived_at = datetime.fromisoformat(str(document.get("archived_at") or now.isoformat()))
    if now - archived_at < ENTRY_GRACE:
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            sleep(ENTRY_POLL)
            if _has_archived_entry(store, prefix, sid):
                return False
        raise TransientError(f"{sid}: archived at {archived_at.isoformat()}, and its `archived` audit entry is "
                             f"not written yet; looked at again once {ENTRY_GRACE.seconds} s have passed")
    write_audit(store, prefix, sid, "archived", {**archived_details(document), "recorded_late": True},
                retention_of(document, now), now)
    return True


def _has_archived_entry(store: ObjectStore, prefix: str, sid: str) -> bool:
    return any(e.action == "archived" for e in read_chain(store, prefix, sid)[0])
