"""Checking the audit trail itself: every chain link, every seal, and every entry a seal must hold.

Everything is read at its ORIGINAL version (audit.originals): what a later PUT or delete marker
stacked over a create-only record is reported, never taken as the record. The seals are checked
as a chain (each holds its predecessor's SHA-256, the first the genesis value), each seal of
the days asked about against its lock, its leaves and the witness kept outside the bucket.
"""

from __future__ import annotations

from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

from recvault import layout
from recvault.audit import chain
from recvault.audit.append import read_chain_originals
from recvault.audit.findings import Finding
from recvault.audit.originals import KeyVersions, versions_by_key
from recvault.audit.seal import CLOCK_SLACK, FoundSeal, list_seals
from recvault.audit.signing import AuditKey
from recvault.audit.witness import Witness, witness_record
from recvault.days import as_utc
from recvault.storage.base import ObjectStore

# Seals and sealed records re-read at once.
READERS = 16
# How far S3's retain-until may be from the date a seal states (S3 keeps it to the second or millisecond).
LOCK_TOLERANCE = timedelta(seconds=1)


@dataclass
class SealCoverage:
    """What the seals of the days checked hold, and up to when the trail is sealed."""

    leaves: dict[str, str] = field(default_factory=dict)  # every leaf key -> SHA-256, of every seal checked
    sealed_until: datetime | None = None  # the end of the latest sealed period
    roots: list[dict[str, Any]] = field(default_factory=list)  # per seal checked: key, period, count, root, sha256

    def covers(self, at: datetime) -> bool:
        """Whether a record stamped `at` falls in a sealed period (so a seal must hold it)."""
        return self.sealed_until is not None and at < self.sealed_until


@dataclass
class TrailResult:
    findings: list[Finding] = field(default_factory=list)
    entries: int = 0
    entries_by_day: dict[str, int] = field(default_factory=dict)
    # Each chain checked, as first written (its entries' original versions).
    entries_by_chain: dict[str, list[chain.Entry]] = field(default_factory=dict)
    # Seals whose period touches the days checked.
    sealed_periods: int = 0
    # Chains that hold an `archived` entry (an archived recording's must).
    archived: set[str] = field(default_factory=set)
    # What check_seals found (check_unsealed_index reads it when given no other).
    coverage: SealCoverage | None = None

    def merge(self, other: TrailResult) -> None:
        """Add what another check (one chain's, run on another thread) found."""
        self.findings.extend(other.findings)
        self.entries += other.entries
        for day, count in other.entries_by_day.items():
            self.entries_by_day[day] = self.entries_by_day.get(day, 0) + count
        self.entries_by_chain.update(other.entries_by_chain)
        self.sealed_periods += other.sealed_periods
        self.archived |= other.archived


def check_chains(store: ObjectStore, prefix: str, chains: Iterable[str], seals: SealCoverage, result: TrailResult,
                 *, days: set[str], audit_key: AuditKey | None = None) -> None:
    """Each chain as first written: numbering and links, nothing stacked over an entry, each
    entry of a sealed period held by a seal with its SHA-256, and, with the audit key, each
    entry it must authenticate authenticated (audit.signing)."""
    for name in chains:
        read = read_chain_originals(store, prefix, name)
        for version in read.later:
            result.findings.append(Finding(
                "chain", name, "an audit entry was hidden by a delete marker" if version.is_delete_marker
                else "an audit entry was rewritten: a later version stands over it",
                {"key": version.key, "version_id": version.version_id, "is_latest": version.is_latest,
                 "is_delete_marker": version.is_delete_marker}, kind="rewritten-entry"))
        for problem in read.unreadable:
            result.findings.append(Finding("chain", name, problem, kind="broken-chain"))
        for problem in chain.chain_problems(name, read.entries, read.seqs):
            result.findings.append(Finding("chain", name, problem, {"keys": [e.key for e in read.entries]},
                                           kind="broken-chain"))
        for entry in read.entries:
            forged = audit_key.problem(entry) if audit_key is not None else None
            if forged is not None:
                result.findings.append(Finding("chain", name, forged, {"key": entry.key, "at": entry.at,
                                                                       "action": entry.action},
                                               kind="forged-entry"))
        result.entries_by_chain[name] = read.entries
        if any(entry.action == "archived" for entry in read.entries):
            result.archived.add(name)
        for entry in read.entries:
            if entry.day not in days:
                continue
            result.entries += 1
            result.entries_by_day[entry.day] = result.entries_by_day.get(entry.day, 0) + 1
            if _covered(seals, entry) and seals.leaves.get(entry.key) != entry.sha256:
                result.findings.append(Finding(
                    "seal", name, f"{entry.key}: stamped {entry.at}, in a sealed period, and no seal holds it "
                    "with this SHA-256", {"key": entry.key, "entry_sha256": entry.sha256,
                                          "sealed_sha256": seals.leaves.get(entry.key)}, kind="unsealed-entry"))


def _covered(seals: SealCoverage, entry: chain.Entry) -> bool:
    try:
        return seals.covers(datetime.fromisoformat(entry.at).astimezone(UTC))
    except ValueError:
        return False


@dataclass(frozen=True)
class _Read:
    found: FoundSeal
    body: bytes | None


def check_seals(store: ObjectStore, prefix: str, days: list[str], result: TrailResult, *,
                witness: Witness | None = None, audit_key: AuditKey | None = None) -> SealCoverage:
    """The chain of seals, and every seal whose period touches `days`.

    Links (each seal's `prev_seal` the SHA-256 of the previous seal's original, by period) for
    every seal; for those of `days`: count, root and period, nothing stacked over the seal, its
    COMPLIANCE lock until the date it states, no period missing before it, a `period-sealed`
    entry that records it, and each leaf's record there at its original version with the
    sealed SHA-256. With a witness, every record
    it holds must be a seal's, and every seal from its first record on must have one. With the
    audit key, only an entry it authenticates records a seal.
    """
    wanted = {date.fromisoformat(day) for day in days}
    found = list_seals(store, prefix)
    with ThreadPoolExecutor(READERS) as pool:
        read = list(pool.map(lambda seal: _Read(seal, _original(store, seal)), found))
    coverage = SealCoverage()
    leaf_seal: dict[str, str] = {}
    checked: list[tuple[FoundSeal, chain.Seal]] = []
    prev, previous = chain.seal_genesis(), None
    for item in read:
        seal_found, key = item.found, item.found.key
        if item.body is None:
            result.findings.append(_replaced(key, "nothing but a delete marker at a seal key",
                                             {"versions": _versions(seal_found.later)}))
            continue
        try:
            seal = chain.Seal.parse(item.body)
        except ValueError as error:
            result.findings.append(_replaced(key, f"the seal's original version is {error}"))
            prev = chain.sha256_hex(item.body)
            continue
        touches = bool(_days_of(seal.period_start, seal.period_end) & wanted)
        named = seal_found.period_start
        link = chain.seal_link_problem(seal, prev, named)
        for problem in chain.seal_problems(seal, prev, named) if touches else [link] if link else []:
            result.findings.append(_replaced(key, problem, {"previous_seal_sha256": prev}))
        if previous is not None:
            _check_neighbours(previous, seal, key, wanted, touches, result)
        if touches:
            result.sealed_periods += 1
            if seal_found.later:
                result.findings.append(_replaced(key, "a later version or delete marker stands over the seal",
                                                 {"versions": _versions(seal_found.later)}))
            _check_lock(store, seal_found, seal, result)
            checked.append((seal_found, seal))
            for leaf_key, digest in seal.leaves:
                coverage.leaves[leaf_key] = digest
                leaf_seal[leaf_key] = key
            coverage.roots.append({"key": key, "period_start": seal.period_start.isoformat(),
                                   "period_seconds": seal.period_seconds, "count": len(seal.leaves),
                                   "root": seal.root, "sha256": seal.sha256})
        if coverage.sealed_until is None or seal.period_end > coverage.sealed_until:
            coverage.sealed_until = seal.period_end
        prev, previous = seal.sha256, seal
    _check_leaves(store, coverage.leaves, leaf_seal, result)
    _check_recorded(store, prefix, checked, result, audit_key)
    if witness is not None:
        _check_witness(witness, read, result)
    result.coverage = coverage
    return coverage


def _original(store: ObjectStore, found: FoundSeal) -> bytes | None:
    return store.get_bytes(found.key, found.original.version_id) if found.original is not None else None


def _replaced(key: str, problem: str, evidence: dict[str, Any] | None = None) -> Finding:
    return Finding("seal", key, problem, evidence or {}, kind="replaced-seal")


def _versions(versions: Iterable[Any]) -> list[dict[str, Any]]:
    return [{"version_id": v.version_id, "is_delete_marker": v.is_delete_marker, "is_latest": v.is_latest}
            for v in versions]


def _days_of(start: datetime, end: datetime) -> set[date]:
    if end <= start:
        return {start.date()}
    last = (end - timedelta(microseconds=1)).date()
    return {start.date() + timedelta(days=n) for n in range((last - start.date()).days + 1)}


def _check_neighbours(previous: chain.Seal, seal: chain.Seal, key: str, wanted: set[date], touches: bool,
                      result: TrailResult) -> None:
    """No period missing between two consecutive seals, and none sealed twice."""
    if seal.period_start > previous.period_end and (touches or _days_of(previous.period_end, seal.period_start)
                                                    & wanted):
        result.findings.append(Finding(
            "seal", f"{previous.period_end.isoformat()}/{seal.period_start.isoformat()}",
            f"no seal for {previous.period_end.isoformat()} to {seal.period_start.isoformat()}",
            {"next_seal": key}, kind="missing-seal"))
    elif seal.period_start < previous.period_end and touches:
        result.findings.append(_replaced(key, f"its period overlaps the previous seal's, which ends "
                                              f"{previous.period_end.isoformat()}"))


def _check_lock(store: ObjectStore, found: FoundSeal, seal: chain.Seal, result: TrailResult) -> None:
    """COMPLIANCE, until the date the seal states (a day seal states none: COMPLIANCE is enough)."""
    assert found.original is not None
    lock = store.lock_of(found.key, found.original.version_id)
    evidence = {"found_mode": lock.mode if lock else None,
                "found_until": lock.until.isoformat() if lock and lock.until else None,
                "stated_until": seal.retain_until.isoformat() if seal.retain_until else None}
    if lock is None or lock.mode != "COMPLIANCE":
        result.findings.append(_replaced(found.key, "the seal is not under COMPLIANCE retention", evidence))
    elif not seal.day_seal and (seal.retain_until is None or lock.until is None
                                or abs(as_utc(lock.until) - seal.retain_until) > LOCK_TOLERANCE):
        result.findings.append(_replaced(found.key, "the seal's retain-until is not the date it states", evidence))


def _check_recorded(store: ObjectStore, prefix: str, checked: list[tuple[FoundSeal, chain.Seal]],
                    result: TrailResult, audit_key: AuditKey | None) -> None:
    """Each seal is one the sealer recorded: a `period-sealed` entry (`day-sealed` for an older day seal)
    of the system chain, around the day S3 stamped the seal, names its SHA-256."""
    days: set[date] = set()
    for found, _ in checked:
        assert found.original is not None
        if found.original.last_modified is not None:
            made = as_utc(found.original.last_modified).date()
            days |= {made - timedelta(days=1), made, made + timedelta(days=1)}
    recorded: set[str] = set()
    for day in sorted(days):
        for entry in read_chain_originals(store, prefix, chain.system_chain(day.isoformat())).entries:
            authentic = audit_key is None or audit_key.problem(entry) is None
            if entry.action in ("period-sealed", "day-sealed") and authentic:
                recorded.add(str(entry.details.get("seal_sha256")))
    for found, seal in checked:
        if seal.sha256 not in recorded:
            result.findings.append(_replaced(found.key, "no `period-sealed` entry of the system chain records this "
                                                        "seal: the sealer did not write it", {"sha256": seal.sha256}))


def _check_leaves(store: ObjectStore, leaves: dict[str, str], leaf_seal: dict[str, str], result: TrailResult) -> None:
    """Each leaf's record at its original version, with the SHA-256 sealed (one versions listing per folder)."""
    by_folder: dict[str, list[str]] = {}
    for key in sorted(leaves):
        by_folder.setdefault(key.rsplit("/", 1)[0] + "/", []).append(key)

    def check(folder: str) -> list[Finding]:
        versions = versions_by_key(store, folder)
        return [found for key in by_folder[folder]
                if (found := _leaf_problem(store, key, leaves[key], versions.get(key), leaf_seal[key]))]

    with ThreadPoolExecutor(READERS) as pool:
        for found in pool.map(check, sorted(by_folder)):
            result.findings.extend(found)


def _leaf_problem(store: ObjectStore, key: str, digest: str, versions: KeyVersions | None,
                  seal_key: str) -> Finding | None:
    evidence: dict[str, Any] = {"seal": seal_key, "sealed_sha256": digest}
    original = versions.original if versions is not None else None
    if original is None:
        return Finding("seal", key, "sealed, and its original version is gone", evidence, kind="altered-sealed-entry")
    if digest == chain.EMPTY_SHA256 and original.size == 0:
        return None  # an index row: empty, as sealed
    found = chain.sha256_hex(store.get_bytes(key, original.version_id))
    if found == digest:
        return None
    return Finding("seal", key, "its original version differs from what was sealed",
                   {**evidence, "original_sha256": found}, kind="altered-sealed-entry")


def _check_witness(witness: Witness, read: list[_Read], result: TrailResult) -> None:
    """Every witness record is a seal's original; every seal from the first witnessed on is witnessed."""
    seals = {item.found.key: item for item in read if item.body is not None}
    witnessed: dict[str, dict[str, Any]] = {}
    for record in witness.records():
        key = str(record.get("key", ""))
        if "unreadable" in record or not key:
            problem = str(record.get("unreadable", "a witness record that names no seal"))
            result.findings.append(Finding("seal", witness.where, problem, kind="witness-mismatch"))
            continue
        item = seals.get(key)
        if item is None:
            result.findings.append(Finding("seal", key, "the witness holds a seal the bucket does not",
                                           {"witness": witness.where, "witnessed": record}, kind="witness-mismatch"))
            continue
        assert item.body is not None
        expected = _expected(key, item.body)
        if record != expected or witnessed.get(key, record) != record:
            result.findings.append(Finding("seal", key, "the seal's original differs from the witness's record",
                                           {"witness": witness.where, "witnessed": record, "in_bucket": expected},
                                           kind="witness-mismatch"))
        witnessed.setdefault(key, record)
    if not witnessed:
        return
    first = min(seals[key].found.period_start for key in witnessed)
    for key, item in seals.items():
        if item.found.period_start >= first and key not in witnessed:
            result.findings.append(Finding("seal", key, "a seal the witness has no record of",
                                           {"witness": witness.where}, kind="witness-mismatch"))


def _expected(key: str, body: bytes) -> dict[str, Any]:
    try:
        return witness_record(key, body)
    except ValueError:
        return {"key": key, "sha256": chain.sha256_hex(body)}


def check_unsealed_index(store: ObjectStore, prefix: str, days: list[str], result: TrailResult, *,
                         seals: SealCoverage | None = None) -> None:
    """In periods not sealed yet, an index row whose entry does not exist at all.

    A writer that lost a race leaves a row whose number holds the winner's entry; a number with
    no entry means the entry was removed (or its writer stopped between the two writes). Rows S3
    stamped before the sealed time are left to the seals: each was sealed with its entry, or was
    stale when its period was sealed. `seals`: what check_seals returned (by default, what it left in `result`).
    """
    coverage = seals or result.coverage or SealCoverage()
    until = coverage.sealed_until
    pointed: set[str] = set()
    for day in days:
        start = datetime.fromisoformat(day).replace(tzinfo=UTC)
        if until is not None and start + timedelta(days=1) <= until:
            continue
        for row_key, versions in versions_by_key(store, layout.partition_prefix(prefix, layout.AUDIT_INDEX,
                                                                                  day)).items():
            located = layout.parse_index_key(prefix, row_key)
            if located is None or versions.original is None:
                continue
            made = versions.original.last_modified
            entry_key = layout.chain_key(prefix, *located)
            if entry_key in coverage.leaves or row_key in coverage.leaves:
                continue  # sealed: the seal's own check says whether it is still there
            if until is None or made is None or as_utc(made) >= until - CLOCK_SLACK:
                pointed.add(entry_key)

    def check(key: str) -> Finding | None:
        found = versions_by_key(store, key).get(key)
        if found is not None and found.original is not None:
            return None
        return Finding("chain", key, "an index row of a period not sealed yet names this entry, and it does not "
                       "exist (removed, or its writer stopped between the index row and the entry)",
                       kind="index-without-entry")

    with ThreadPoolExecutor(READERS) as pool:
        result.findings.extend(f for f in pool.map(check, sorted(pointed)) if f is not None)
