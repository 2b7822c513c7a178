"""Legal holds: set on every object of the selected recordings, kept in a registry, released with care.

The registry is create-only, locked records under `holds/<id>/` (`set.json`, then `released.json`),
so `hold list` reads a handful of small objects, not the archive, and no record of a hold
is ever rewritten; a record counts only when a system-chain entry vouches for it
(`hold_registry`). A hold lists the recordings it covered when it was set; releasing it
turns S3's legal hold off (on every version) only on recordings whose chain holds its `held`
entry, that no other active hold covers and whose policy did not itself ask for a hold.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, TypeVar

from recvault.audit.append import read_chain_originals
from recvault.audit.chain import Entry
from recvault.audit.write import stamped, write_audit
from recvault.compliance.hold_registry import RegistryRecord, read_registry, write_record
from recvault.compliance.hold_registry import registry_findings as registry_findings  # audit verify's entry
from recvault.compliance.hold_selector import Selector
from recvault.compliance.recording_objects import Located, audit_keys, audit_retention, documents, locate, versions
from recvault.errors import AlreadyExists, RecvaultError
from recvault.storage.base import ObjectStore, Retention

# Recordings held or released at once: each costs a dozen S3 round trips (list versions, one
# legal-hold call per version, the audit record), so a few in flight hide the latency.
HOLD_CONCURRENCY = 8
T = TypeVar("T")
R = TypeVar("R")


class HoldError(RecvaultError):
    """A hold that does not exist, is already released, or whose id is taken."""


# A hold id names a folder under holds/: letters, digits, '.', '_' and '-', at most 64.
HOLD_ID = re.compile(r"[A-Za-z0-9._-]{1,64}")


def check_hold_id(value: str) -> str:
    """`value` if it may name a hold (and its folder under holds/), else HoldError saying what may."""
    if not HOLD_ID.fullmatch(value) or value.strip(".") == "":
        raise HoldError(f"{value!r}: a hold id is 1-64 letters, digits, '.', '_' or '-'")
    return value


@dataclass
class Hold:
    """One legal hold as the registry keeps it."""

    hold_id: str
    selector: dict[str, Any]
    reason: str
    actor: str
    at: str
    recordings: list[str]
    released: dict[str, Any] | None = field(default=None)
    # Each recording's day, so a release finds it without searching every partition.
    dates: dict[str, str] = field(default_factory=dict)

    @property
    def active(self) -> bool:
        return self.released is None

    def record(self) -> dict[str, Any]:
        return {"hold_id": self.hold_id, "selector": self.selector, "reason": self.reason, "actor": self.actor,
                "at": self.at, "recordings": self.recordings, "dates": self.dates}


def new_hold_id(now: datetime) -> str:
    """A hold id that sorts by time: `H20261202T0105-3f9a2c`."""
    return f"H{now:%Y%m%dT%H%M}-{secrets.token_hex(3)}"


def select(store: ObjectStore, prefix: str, selector: Selector) -> list[Located]:
    """The recordings the selector names: looked up by RecordingSid, else read day by day in its range."""
    if selector.recording_sids and not (selector.date_from or selector.date_to):
        found = [locate(store, prefix, sid) for sid in selector.recording_sids]
        return [r for r in found if r is not None and selector.matches(r.sid, r.date, r.document)]
    return [r for r in documents(store, prefix, date_from=selector.date_from, date_to=selector.date_to)
            if selector.matches(r.sid, r.date, r.document)]


def recording_keys(store: ObjectStore, prefix: str, located: Located) -> list[str]:
    """Every key of a recording a hold covers: media, document, events, audit records."""
    return [*located.keys, *audit_keys(store, prefix, located)]


def set_legal_holds(store: ObjectStore, prefix: str, located: Located, on: bool) -> int:
    """Turn legal hold on (off) for every version of every key of the recording; returns the versions changed.

    Every version, not only the current one: an earlier version of a document (before a late
    price was added) is part of the record too, and one left held would block erasure for ever.
    """
    changed = 0
    for version in versions(store, recording_keys(store, prefix, located)):
        if not version.is_delete_marker:
            store.set_legal_hold(version.key, on, version_id=version.version_id)
            changed += 1
    return changed


def set_hold(store: ObjectStore, prefix: str, selector: Selector, *, reason: str, actor: str, now: datetime,
             hold_id: str | None = None, record_retention: Retention | None = None) -> tuple[Hold, list[Located]]:
    """Register the hold, then turn S3 legal hold on for every object of every selected recording.

    `record_retention`: the lock of the registry record and of its `hold-set` entry (the commands
    pass COMPLIANCE for the longest retention the policy can decide).
    """
    if hold_id is not None:
        check_hold_id(hold_id)
    chosen = select(store, prefix, selector)
    hold = Hold(hold_id or new_hold_id(now), selector.as_dict(), reason, actor, now.isoformat(),
                [r.sid for r in chosen], dates={r.sid: r.date for r in chosen})
    try:
        write_record(store, prefix, "set", hold.record(), retention=record_retention, actor=actor)
    except AlreadyExists:
        raise HoldError(f"hold {hold.hold_id} already exists; choose another --id") from None

    def hold_one(located: Located) -> None:
        set_legal_holds(store, prefix, located, True)
        write_audit(store, prefix, located.sid, "held",
                    {"hold_id": hold.hold_id, "reason": reason, "selector": hold.selector},
                    audit_retention(located.document, now), stamped(now), actor=actor)

    _each(hold_one, chosen)
    return hold, chosen


def release_hold(store: ObjectStore, prefix: str, hold_id: str, *, reason: str, actor: str, now: datetime,
                 record_retention: Retention | None = None) -> tuple[Hold, list[str], dict[str, list[str]]]:
    """Release a hold: (the hold, recordings released, recordings kept held → what keeps them).

    `record_retention`: the lock of the release record and its `hold-released` entry (see set_hold).
    """
    holds = {h.hold_id: h for h in list_holds(store, prefix)}
    hold = holds.get(hold_id)
    if hold is None:
        raise HoldError(f"no hold {hold_id!r}; `recvault hold list` shows the active ones")
    if not hold.active:
        raise HoldError(f"hold {hold_id} was already released at {hold.released and hold.released.get('at')}")
    release = {"hold_id": hold_id, "reason": reason, "actor": actor, "at": now.isoformat()}
    try:
        write_record(store, prefix, "released", release, retention=record_retention, actor=actor)
    except AlreadyExists:
        # A release record no entry vouches for is ignored, but its key stays taken: the hold stays active.
        raise HoldError(f"hold {hold_id} is being released by someone else, or its release record was forged "
                        f"(`recvault audit verify` tells which); it stays active") from None
    others = [h for h in holds.values() if h.active and h.hold_id != hold_id]

    def release_one(sid: str) -> tuple[str, list[str]] | None:
        located = locate(store, prefix, sid, date=hold.dates.get(sid))
        if located is None:
            return None  # erased or purged since: nothing left to release
        keepers = holds_covering(others, sid)
        if located.document and located.document.get("legal_hold"):
            keepers.append(f"policy rule {located.document.get('policy')}")
        if not held_by(read_chain_originals(store, prefix, sid).trusted, hold_id):
            # This hold never recorded holding it: its legal hold, if any, is someone else's to release.
            keepers.append(f"no `held` entry of {hold_id} in its audit chain")
        if not keepers:
            set_legal_holds(store, prefix, located, False)
        write_audit(store, prefix, sid, "released",
                    {"hold_id": hold_id, "reason": reason, "selector": hold.selector, "legal_hold_kept_by": keepers},
                    audit_retention(located.document, now), stamped(now), actor=actor)
        return sid, keepers

    done = [result for result in _each(release_one, hold.recordings) if result is not None]
    released = [sid for sid, keepers in done if not keepers]
    kept = {sid: keepers for sid, keepers in done if keepers}
    # A hold set on one of these recordings while this release ran: put its legal hold back.
    later = held_recordings([h for h in list_holds(store, prefix) if h.hold_id not in holds])
    for sid in set(released) & later:
        located = locate(store, prefix, sid, date=hold.dates.get(sid))
        if located is not None:
            set_legal_holds(store, prefix, located, True)
    hold.released = release
    return hold, released, kept


def list_holds(store: ObjectStore, prefix: str) -> list[Hold]:
    """Every hold in the registry (active and released) whose records count (see hold_registry), oldest first."""
    return holds_of(read_registry(store, prefix))


def holds_of(records: list[RegistryRecord]) -> list[Hold]:
    """The holds the counted records make, oldest first; records that do not count are left out. Pure."""
    holds: dict[str, Hold] = {}
    released: dict[str, dict[str, Any]] = {}
    for found in records:
        if found.problem is not None:
            continue
        record = found.record
        if found.state == "set":
            holds[found.hold_id] = Hold(found.hold_id, dict(record.get("selector") or {}),
                                        str(record.get("reason", "")), str(record.get("actor", "")),
                                        str(record.get("at", "")), list(record.get("recordings") or []),
                                        dates=dict(record.get("dates") or {}))
        elif found.state == "released":
            released[found.hold_id] = record
    for hold_id, record in released.items():
        if hold_id in holds:
            holds[hold_id].released = record
    return sorted(holds.values(), key=lambda h: (h.at, h.hold_id))


def held_by(entries: Sequence[Entry], hold_id: str) -> bool:
    """Whether a recording's chain records that this hold held it (a `held` entry naming it). Pure."""
    return any(e.action == "held" and e.details.get("hold_id") == hold_id for e in entries)


def _each(work: Callable[[T], R], items: list[T]) -> list[R]:
    """`work` on every item, HOLD_CONCURRENCY at a time (S3 round trips, not CPU, are the cost)."""
    with ThreadPoolExecutor(max_workers=HOLD_CONCURRENCY) as pool:
        return list(pool.map(work, items))


def holds_covering(holds: list[Hold], recording_sid: str) -> list[str]:
    """Ids of the active holds that cover a recording. Pure."""
    return [h.hold_id for h in holds if h.active and recording_sid in h.recordings]


def held_recordings(holds: list[Hold]) -> set[str]:
    """Every RecordingSid an active hold covers. Pure."""
    return {sid for h in holds if h.active for sid in h.recordings}
