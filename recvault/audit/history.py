"""`recvault audit show RE…`: one recording's chain of custody, from its accepted callback to today."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

from recvault import layout
from recvault.audit import chain
from recvault.audit.append import read_chain
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
    seals: dict[str, dict[str, str] | None] = {}
    for position, (entry, seq) in enumerate(zip(entries, seqs, strict=True), start=1):
        if seq != position:
            link = f"entry {position} is missing before this one"
        elif entry.prev != prev:
            link = "BROKEN: prev does not match the previous entry"
        else:
            link = "genesis" if seq == 1 else "ok"
        prev = entry.sha256
        if entry.day not in seals:
            key = layout.seal_key(prefix, entry.day)
            seals[entry.day] = ({str(k): str(v) for k, v in json.loads(store.get_bytes(key)).get("leaves", [])}
                                if store.head(key) else None)
        leaves = seals[entry.day]
        sealed = ("not sealed yet" if leaves is None else "sealed" if leaves.get(entry.key) == entry.sha256
                  else "BROKEN: differs from the seal")
        steps.append(Step(entry.at, entry.actor, entry.action, entry.details, entry.sha256, link, sealed))
    for problem in unreadable:
        steps.append(Step("", "", "unreadable", {"problem": problem}, "", "BROKEN", ""))
    return steps


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
