"""`recvault audit show RE…`: one recording's chain of custody, from its accepted callback to today."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

from recvault import layout
from recvault.audit import chain
from recvault.audit.append import read_chain
from recvault.audit.originals import original_bytes
from recvault.storage.base import ObjectStore


@dataclass(frozen=True)
class Step:
    """One line of the history: a ledger row or a chain entry, with how it checks out."""

    at: str
    actor: str
    action: str
    details: dict[str, Any]
    sha256: str
    link: str  # "ok", "genesis", "accepted", or what is wrong
    sealed: str  # "sealed", "not sealed yet", or what is wrong


def recording_history(store: ObjectStore, prefix: str, recording_sid: str, *,
                      ledger_days: list[str] | None = None) -> list[Step]:
    """Ledger rows (from `ledger_days`, else the day of the first entry and the day before), then the chain."""
    entries, seqs, unreadable = read_chain(store, prefix, recording_sid)
    steps = _accepted(store, prefix, recording_sid, ledger_days or _around_first([e.day for e in entries]))
    prev = chain.genesis(recording_sid)
    seals = _Seals(store, prefix)
    for position, (entry, seq) in enumerate(zip(entries, seqs, strict=True), start=1):
        if seq != position:
            link = f"entry {position} is missing before this one"
        elif entry.prev != prev:
            link = "BROKEN: prev does not match the previous entry"
        else:
            link = "genesis" if seq == 1 else "ok"
        prev = entry.sha256
        leaves = seals.holding(entry)
        sealed = ("not sealed yet" if leaves is None else "sealed" if leaves.get(entry.key) == entry.sha256
                  else "BROKEN: differs from the seal")
        steps.append(Step(entry.at, entry.actor, entry.action, entry.details, entry.sha256, link, sealed))
    for problem in unreadable:
        steps.append(Step("", "", "unreadable", {"problem": problem}, "", "BROKEN", ""))
    return steps


class _Seals:
    """The seal of the period an entry was stamped in, read at its original version (once each)."""

    def __init__(self, store: ObjectStore, prefix: str) -> None:
        self.store, self.prefix = store, prefix
        self.keys: dict[str, list[tuple[datetime, str]]] = {}
        self.read: dict[str, chain.Seal | None] = {}

    def holding(self, entry: chain.Entry) -> dict[str, str] | None:
        """The leaves of the seal whose period holds the entry's stamp; None when none does yet."""
        try:
            at = datetime.fromisoformat(entry.at).astimezone(UTC)
        except ValueError:
            return None
        if entry.day not in self.keys:
            self.keys[entry.day] = sorted((start, key) for key in self.store.list_keys(
                layout.seals_of_day_prefix(self.prefix, entry.day))
                if (start := layout.parse_seal_key(self.prefix, key)) is not None)
        for start, key in reversed(self.keys[entry.day]):
            if start <= at:
                seal = self._seal(key)
                return dict(seal.leaves) if seal is not None and at < seal.period_end else None
        return None

    def _seal(self, key: str) -> chain.Seal | None:
        if key not in self.read:
            body = original_bytes(self.store, key)
            try:
                self.read[key] = chain.Seal.parse(body) if body is not None else None
            except ValueError:
                self.read[key] = None
        return self.read[key]


def _around_first(entry_days: list[str]) -> list[str]:
    if not entry_days:
        return []
    first = date.fromisoformat(min(entry_days))
    return [(first + timedelta(days=offset)).isoformat() for offset in (-1, 0)]


def _accepted(store: ObjectStore, prefix: str, sid: str, days: list[str]) -> list[Step]:
    """The ledger rows of the recording on those days."""
    steps = []
    for day in days:
        for key in store.list_keys(layout.partition_prefix(prefix, layout.AUDIT_ACCEPTED, day)):
            for line in store.get_bytes(key).splitlines():
                row = json.loads(line)
                if row.get("sid") == sid:
                    steps.append(Step(row["received_at"], "ingest", f"callback-accepted ({row['status']})",
                                      {"account_sid": row.get("account_sid"), "ledger_object": key},
                                      "", "accepted", "ledger (COMPLIANCE-locked)"))
    return sorted(steps, key=lambda s: s.at)
