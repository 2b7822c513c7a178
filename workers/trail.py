"""The audit trail as the workers and commands write it: hash-chained entries (see recvault.ops.trail).

Each recording has a chain of its own, so archiving never waits on another recording's
entries; actions that belong to no recording go to the day's system chain.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from recvault import chain
from recvault.ops.trail import append
from recvault.storage.base import ObjectStore, Retention


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
