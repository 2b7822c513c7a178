"""Completeness: every completed callback ingest accepted has an outcome recvault vouches for.

The accepted-callback ledger is read from S3 (each object at its original version) and, when
the broker answers, from the tail still in Redis, so a callback accepted a second ago is
already held to account. An outcome is an archived document, an `absent`/`failed` event
document its `event-…` entry vouches for, a dead letter the recording's chain recorded
(`dead-lettered`), or a tombstone an `erased`/`purged` entry vouches for. Keys alone prove
nothing: anyone allowed PutObject can write a key under `events/`, `tombstones/` or
`dead-letters/` naming any recording.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, timedelta

from recvault import layout
from recvault.audit.append import read_chain_originals
from recvault.audit.chain import sha256_hex
from recvault.audit.findings import Finding
from recvault.audit.ledger import AcceptedRow
from recvault.audit.originals import original_bytes, versions_by_key
from recvault.audit.verify.written_once import recording_named
from recvault.storage.base import ObjectStore


@dataclass
class Accepted:
    """The completed callbacks accepted on the days checked: RecordingSid → where the ledger holds it."""

    completed: dict[str, str] = field(default_factory=dict)
    rows: int = 0
    tail_rows: int = 0
    # Lines of ledger objects that are no row: the flush never writes one, so someone else did.
    malformed: list[Finding] = field(default_factory=list)

    def add(self, row: AcceptedRow, where: str) -> None:
        if row.status == "completed":
            self.completed.setdefault(row.recording_sid, where)


def accepted_rows(store: ObjectStore, prefix: str, days: list[str], tail: Iterable[AcceptedRow]) -> Accepted:
    """The ledger's rows of `days`: flushed objects (original versions) and the Redis tail."""
    accepted = Accepted()
    for day in days:
        for key, found in versions_by_key(store, layout.partition_prefix(prefix, layout.AUDIT_ACCEPTED, day)).items():
            if found.original is None:
                continue
            for number, line in enumerate(store.get_bytes(key, found.original.version_id).splitlines(), start=1):
                try:
                    row = json.loads(line)
                    accepted.add(AcceptedRow(str(row["sid"]), str(row["status"]), str(row.get("account_sid", "")),
                                             str(row.get("received_at", ""))), key)
                except (ValueError, KeyError, TypeError):
                    accepted.malformed.append(Finding(
                        "ledger", key, f"line {number} of a ledger object is no accepted-callback row: the flush "
                        "never writes one", {"key": key, "line": number}, kind="rejected-ledger-row"))
                    continue
                accepted.rows += 1
    wanted = set(days)
    for row in tail:
        if row.day in wanted:
            accepted.add(row, "the ledger's tail in Redis (not flushed to S3 yet)")
            accepted.tail_rows += 1
    return accepted


def completeness_findings(store: ObjectStore, prefix: str, days: list[str], accepted: Accepted,
                          genuine_tombstones: set[str]) -> list[Finding]:
    """A `vanished-recording` finding for each accepted completed callback without a vouched outcome."""
    wide = _around(days)
    archived = {p[1] for day in wide for key in store.list_keys(layout.partition_prefix(prefix, layout.METADATA, day))
                if (p := layout.parse_metadata_key(prefix, key))}
    ended: dict[str, list[tuple[str, str]]] = {}  # RecordingSid → its absent/failed event documents (key, status)
    for day in wide:
        for key in store.list_keys(layout.partition_prefix(prefix, layout.EVENTS, day)):
            if (event := layout.parse_event_key(prefix, key)) and event[2] in ("absent", "failed"):
                ended.setdefault(event[1], []).append((key, event[2]))
    lettered = {recording_named(key) for key in store.list_keys(f"{prefix}{layout.DEAD_LETTERS}")}
    findings = []
    for sid, where in sorted(accepted.completed.items()):
        if sid in archived or sid in genuine_tombstones:
            continue
        if any(_event_recorded(store, prefix, sid, key, status) for key, status in ended.get(sid, [])):
            continue
        if sid in lettered and _chain_recorded(store, prefix, sid, "dead-lettered"):
            continue
        findings.append(Finding("completeness", sid, "callback accepted, and nothing of it is archived, recorded "
                                "as absent/failed, dead-lettered or erased", {"ledger": where},
                                kind="vanished-recording"))
    return findings


def _event_recorded(store: ObjectStore, prefix: str, sid: str, key: str, status: str) -> bool:
    """Whether the recording's chain vouches for this event document: its `event-<status>` entry names
    the key and (entries since documents were hashed) the SHA-256 of the document's original version."""
    entries = [e for e in read_chain_originals(store, prefix, sid).trusted
               if e.action == f"event-{status}" and e.details.get("key") == key]
    if not entries:
        return False
    hashes = {e.details.get("document_sha256") for e in entries}
    if None in hashes:
        return True  # an entry written before event documents were hashed: the key is all it names
    original = original_bytes(store, key)
    return original is not None and sha256_hex(original) in hashes


def _chain_recorded(store: ObjectStore, prefix: str, sid: str, action: str) -> bool:
    return any(entry.action == action for entry in read_chain_originals(store, prefix, sid).trusted)


def _around(days: list[str]) -> list[str]:
    """The days and one either side: a recording's start date and its callback's may straddle midnight."""
    first = date.fromisoformat(days[0]) - timedelta(days=1)
    count = (date.fromisoformat(days[-1]) - first).days + 2
    return [(first + timedelta(days=n)).isoformat() for n in range(count)]
