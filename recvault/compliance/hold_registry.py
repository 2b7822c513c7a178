"""The holds registry's records, and which of them count: each is vouched for by a system-chain entry.

`holds/<id>/set.json` and `holds/<id>/released.json` are written create-only and locked, and
each write is followed by a `hold-set` / `hold-released` entry in the system chain of the
record's day naming its key and the SHA-256 of its bytes. Anyone with PutObject can still
put a record at a new key, or stack a version over an old one; so a record counts only when

* it is the key's original (oldest) version,
* it is filed under the id it names (`holds/H-A/…` says `"hold_id": "H-A"`), and
* an entry of the system chain of the day its `at` names vouches for that key and those bytes.

Anything else is ignored when deciding what is held, and `registry_findings` reports it for
`audit verify`: a forged release could otherwise drop the legal hold of every recording its
hold covers, a forged hold keep recordings past their retention.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from recvault import layout
from recvault.audit import chain
from recvault.audit.append import read_chain_originals
from recvault.audit.chain import Entry, sha256_hex
from recvault.audit.findings import Finding
from recvault.audit.originals import versions_by_key
from recvault.audit.write import write_system_audit
from recvault.days import as_utc
from recvault.storage.base import ObjectStore, ObjectVersion, Retention

State = Literal["set", "released"]
# How far a record's `at` may run ahead of S3's clock (the writer's clock and S3's differ a little).
CLOCK_SLACK = timedelta(minutes=5)
# The system-chain entry that vouches for each kind of record.
ENTRY_ACTIONS: dict[str, str] = {"set": "hold-set", "released": "hold-released"}


@dataclass(frozen=True)
class RegistryRecord:
    """One key under holds/, read at its original version, and why it does not count (None: it does)."""

    key: str
    hold_id: str  # the folder it is filed under
    state: str  # "set", "released", or "" for a key that is no registry record
    record: dict[str, Any]
    sha256: str | None
    later: tuple[ObjectVersion, ...]
    problem: str | None


def parse_record_key(prefix: str, key: str) -> tuple[str, State] | None:
    """(the folder's hold id, "set" or "released") of a registry record's key, else None. Pure."""
    folder, _, name = key.removeprefix(prefix + layout.HOLDS).partition("/")
    state: State
    for state in ("set", "released"):
        if folder and key == layout.hold_key(prefix, folder, state) and name == f"{state}.json":
            return folder, state
    return None


def record_day(record: dict[str, Any]) -> str | None:
    """The UTC day a record's `at` names (its vouching entry is in that day's system chain), or None. Pure."""
    try:
        at = datetime.fromisoformat(str(record.get("at")))
    except ValueError:
        return None
    return (at if at.tzinfo else at.replace(tzinfo=UTC)).astimezone(UTC).date().isoformat()


def record_problem(hold_id: str, state: State, key: str, record: dict[str, Any], sha256: str,
                   entries: Sequence[Entry], stored_at: datetime | None = None) -> str | None:
    """Why a record (its original version) does not count, or None; `entries`: its day's system chain,
    `stored_at`: when S3 stored that version (its LastModified). Pure."""
    if record.get("hold_id") != hold_id:
        return f"{key} names hold {record.get('hold_id')!r} but is filed under {hold_id!r}"
    day = record_day(record)
    if day is None:
        return f"{key}: its `at` ({record.get('at')!r}) names no day"
    if stored_at is not None and as_utc(datetime.fromisoformat(str(record["at"]))) > as_utc(stored_at) + CLOCK_SLACK:
        # Dated after S3 stored it: its vouching entry would sit in a day's chain nobody checks yet.
        return f"{key}: its `at` ({record.get('at')}) is later than S3 stored it ({stored_at.isoformat()})"
    action = ENTRY_ACTIONS[state]
    if not any(e.action == action and e.details.get("hold_id") == hold_id and e.details.get("key") == key
               and e.details.get("sha256") == sha256 for e in entries):
        return f"no `{action}` entry in the system chain of {day} names {key} and its SHA-256"
    return None


def write_record(store: ObjectStore, prefix: str, state: State, record: dict[str, Any], *,
                 retention: Retention | None, actor: str) -> str:
    """Write a record create-only (AlreadyExists if the key is taken) and locked, then the entry that
    vouches for it, dated by the record's own `at`, so a reader knows which day's chain to look in.
    Returns its key."""
    hold_id = str(record["hold_id"])
    key = layout.hold_key(prefix, hold_id, state)
    body = layout.json_line(record)
    store.put_bytes(key, body, content_type="application/json", retention=retention)
    write_system_audit(store, prefix, ENTRY_ACTIONS[state], {"hold_id": hold_id, "key": key,
                                                            "sha256": sha256_hex(body)},
                       datetime.fromisoformat(str(record["at"])), actor=actor, retention=retention)
    return key


def read_registry(store: ObjectStore, prefix: str) -> list[RegistryRecord]:
    """Every key under holds/, judged (one listing, one read per record, one chain read per day)."""
    days: dict[str, list[Entry]] = {}
    records = []
    for key, found in versions_by_key(store, prefix + layout.HOLDS).items():
        parsed = parse_record_key(prefix, key)
        folder = parsed[0] if parsed else key.removeprefix(prefix + layout.HOLDS).split("/", 1)[0]
        if parsed is None or found.original is None:
            what = "no registry record" if parsed is None else "delete markers and no record under them"
            records.append(RegistryRecord(key, folder, parsed[1] if parsed else "", {}, None, tuple(found.later),
                                          f"{key}: {what}"))
            continue
        body = store.get_bytes(key, found.original.version_id)
        digest = sha256_hex(body)
        try:
            loaded = json.loads(body)
        except ValueError:
            loaded = None
        record: dict[str, Any] = loaded if isinstance(loaded, dict) else {}
        problem: str | None = f"{key} is not a JSON object"
        if isinstance(loaded, dict):
            day = record_day(record)
            if day is not None and day not in days:
                days[day] = read_chain_originals(store, prefix, chain.system_chain(day)).trusted
            problem = record_problem(folder, parsed[1], key, record, digest, days.get(day or "", []),
                                     found.original.last_modified)
        records.append(RegistryRecord(key, folder, parsed[1], record, digest, tuple(found.later), problem))
    return records


def registry_findings(store: ObjectStore, prefix: str) -> list[Finding]:
    """A `forged-hold-record` finding for every record that does not count, and every version over one."""
    records = read_registry(store, prefix)
    counted = [r for r in records if r.problem is None]
    released = {r.hold_id for r in counted if r.state == "released"}
    covers = {r.hold_id: sorted(map(str, r.record.get("recordings") or [])) for r in counted if r.state == "set"}
    findings = []
    for r in records:
        named = r.record.get("hold_id")
        subject = named if isinstance(named, str) and named else r.hold_id
        evidence: dict[str, Any] = {"key": r.key, "filed_under": r.hold_id, "sha256": r.sha256}
        if r.problem is not None:
            if r.state == "released":
                # What honouring it would have done: drop the legal hold of every recording that hold covers.
                evidence["would_expose"] = [] if subject in released else covers.get(subject, [])
            elif r.state == "set":
                evidence["would_hold"] = sorted(map(str, r.record.get("recordings") or []))
            findings.append(Finding("registry", subject, r.problem, evidence, kind="forged-hold-record"))
        if r.later and r.sha256 is not None:  # over a record read (else the finding above says it all)
            findings.append(Finding("registry", r.hold_id, "a later version or delete marker over a registry record",
                                    {**evidence, "later": [{"version_id": v.version_id,
                                                            "delete_marker": v.is_delete_marker}
                                                           for v in r.later]}, kind="forged-hold-record"))
    return findings
