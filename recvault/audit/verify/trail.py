"""Checking the audit trail itself: every chain link and every seal in a range of days."""

from __future__ import annotations

import json
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import date

from recvault import layout
from recvault.audit import chain
from recvault.audit.append import read_chain
from recvault.audit.findings import Finding
from recvault.audit.seal import sealed_days
from recvault.storage.base import ObjectStore

# Sealed entries re-read at once.
READERS = 16


@dataclass
class TrailResult:
    findings: list[Finding] = field(default_factory=list)
    entries: int = 0
    entries_by_day: dict[str, int] = field(default_factory=dict)
    sealed_days: list[str] = field(default_factory=list)
    # Chains that hold an `archived` entry (an archived recording's must).
    archived: set[str] = field(default_factory=set)


def check_chains(store: ObjectStore, prefix: str, chains: Iterable[str], seals: dict[str, dict[str, str]],
                 result: TrailResult, *, days: set[str]) -> None:
    """Links and numbering of each chain; each entry of a sealed day must be one of its seal's leaves."""
    for name in chains:
        entries, seqs, unreadable = read_chain(store, prefix, name)
        for problem in unreadable:
            result.findings.append(Finding("chain", name, problem))
        for problem in chain.chain_problems(name, entries, seqs):
            result.findings.append(Finding("chain", name, problem, {"keys": [e.key for e in entries]}))
        if any(entry.action == "archived" for entry in entries):
            result.archived.add(name)
        for entry in entries:
            if entry.day not in days:
                continue
            result.entries += 1
            result.entries_by_day[entry.day] = result.entries_by_day.get(entry.day, 0) + 1
            sealed = seals.get(entry.day)
            if sealed is not None and sealed.get(entry.key) != entry.sha256:
                result.findings.append(Finding(
                    "seal", entry.key, f"not in the seal of {entry.day} as it is now",
                    {"entry_sha256": entry.sha256, "sealed_sha256": sealed.get(entry.key)}))


def check_seals(store: ObjectStore, prefix: str, days: list[str], result: TrailResult) -> dict[str, dict[str, str]]:
    """Each seal's root, count and link to the previous seal, and each leaf's entry unchanged.

    Returns the leaves (key → SHA-256) of every sealed day in `days`.
    """
    all_sealed = sealed_days(store, prefix)
    leaves_by_day: dict[str, dict[str, str]] = {}
    prev = chain.seal_genesis()
    previous_day: str | None = None
    for day in all_sealed:
        body = store.get_bytes(layout.seal_key(prefix, day))
        if day in days:
            result.sealed_days.append(day)
            try:
                seal = json.loads(body)
            except ValueError:
                result.findings.append(Finding("seal", day, "the seal is not JSON"))
            else:
                for problem in chain.seal_problems(day, seal, prev):
                    result.findings.append(Finding("seal", day, problem, {"previous_seal_day": previous_day}))
                leaves = {str(k): str(v) for k, v in seal.get("leaves", [])}
                leaves_by_day[day] = leaves
                _check_leaves(store, day, leaves, result)
        prev, previous_day = chain.sha256_hex(body), day
    for earlier, later in zip(all_sealed, all_sealed[1:], strict=False):
        if (_day_number(later) - _day_number(earlier)) != 1 and later in days:
            result.findings.append(Finding("seal", later, f"no seal for the day(s) between {earlier} and {later}"))
    return leaves_by_day


def check_unsealed_index(store: ObjectStore, prefix: str, days: list[str], result: TrailResult) -> None:
    """On days not sealed yet, an index row whose entry number does not exist at all.

    A writer that lost a race leaves a row whose number holds the winner's entry; a number
    with no entry means the entry was removed (or its writer stopped between the two writes).
    """
    pointed = sorted({parsed for day in days if day not in result.sealed_days
                      for key in store.list_keys(layout.partition_prefix(prefix, layout.AUDIT_INDEX, day))
                      if (parsed := layout.parse_index_key(prefix, key)) is not None})

    def check(located: tuple[str, int]) -> Finding | None:
        key = layout.chain_key(prefix, *located)
        if store.head(key) is not None:
            return None
        return Finding("chain", key, "the day's index names this entry but it does not exist (removed, or its "
                       "writer stopped between the index row and the entry)")

    with ThreadPoolExecutor(READERS) as pool:
        result.findings.extend(f for f in pool.map(check, pointed) if f is not None)


def _check_leaves(store: ObjectStore, day: str, leaves: dict[str, str], result: TrailResult) -> None:
    def check(leaf: tuple[str, str]) -> Finding | None:
        key, digest = leaf
        if store.head(key) is None:
            return Finding("seal", key, f"sealed on {day} but no longer in the trail", {"sealed_sha256": digest})
        found = chain.sha256_hex(store.get_bytes(key))
        if found != digest:
            return Finding("seal", key, f"changed since it was sealed on {day}",
                           {"sealed_sha256": digest, "current_sha256": found})
        return None

    with ThreadPoolExecutor(READERS) as pool:
        result.findings.extend(f for f in pool.map(check, sorted(leaves.items())) if f is not None)


def _day_number(day: str) -> int:
    return date.fromisoformat(day).toordinal()
