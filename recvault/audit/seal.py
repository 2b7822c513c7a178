"""Seals of the audit trail: one per period of UTC time, over every record written in it.

A period's leaves are (key, SHA-256) of
* every audit entry stamped in the period, found through its day's index rows, at its
  ORIGINAL version (what was first written at the key: audit.originals);
* the index row of each of those entries whose 16-hex digest is that original's (an empty
  object: its leaf holds the SHA-256 of nothing). A row whose digest matches no original is
  stale — its writer lost a race for the number, or died before writing — and is no leaf;
* every accepted-ledger object that appeared in the period (its original's S3 LastModified
  falls in it; the first period seal after genesis or a day seal takes every earlier one too),
  looked for under the period's day and the day before.

Which records a period holds is decided by what S3 recorded (original versions, the times S3
stamped), so two sealers — a second beat run, a run again after a crash — compute the same
seal (only an entry written after its period was sealed, GRACE past its stamp, would change
it: verify reports that entry unsealed). A seal is written create-only and COMPLIANCE-locked,
and holds the SHA-256 of the previous seal's original, so the seals form a chain of their own;
each seal written is recorded as a `period-sealed` system entry and, when RECVAULT_SEAL_WITNESS
names one, in a witness outside the bucket. A seal key already taken by other content is refused
(SealConflict): the sealer never chains onto a seal it did not compute. With an audit key
(audit.signing), an entry stamped after RECVAULT_AUDIT_KEY_SINCE without a valid MAC is not
recvault's: it is no leaf, and the run that seals its period reports it in its
`seal-found-tampering` entry.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta

from recvault import layout
from recvault.audit import chain
from recvault.audit.originals import KeyVersions, original_bytes, versions_by_key
from recvault.audit.signing import AuditKey
from recvault.audit.witness import Witness
from recvault.audit.write import write_system_audit
from recvault.errors import AlreadyExists, PermanentError
from recvault.storage.base import ObjectStore, ObjectVersion, Retention

log = logging.getLogger("recvault.worker")

# Records read at once while sealing: S3 answers each in milliseconds, a period may hold 10^4.
READERS = 16
# RECVAULT_SEAL_PERIOD_SECONDS' default (the setting is checked in recvault.settings).
DEFAULT_PERIOD_SECONDS = 3600
# How often beat flushes the accepted-callback ledger to S3 (workers.beat_schedule builds its
# schedule from this).
LEDGER_FLUSH_INTERVAL = timedelta(minutes=15)
# A period is sealed this long after it ends. By then the first ledger flush after the end has
# run, so every callback accepted in the period is in S3; and every entry stamped in the period is
# written (an entry is stamped as it is appended, and written milliseconds later). The extra
# minute absorbs a flush that starts late and clocks (workers', S3's) that differ by less.
GRACE = LEDGER_FLUSH_INTERVAL + timedelta(seconds=60)
# S3 stamps an index row after its writer stamped the entry; clocks may differ by this much.
CLOCK_SLACK = timedelta(seconds=60)
# Periods one run seals at most, and how long it keeps starting new ones: a beat that was down
# for weeks catches up over several runs, none much longer than the 5 minutes between runs.
MAX_PERIODS_PER_RUN = 288
RUN_BUDGET = timedelta(minutes=4)
# System chain entries looked through, newest first, for the one that records a seal.
RECORD_LOOKBACK = 50


class SealConflict(PermanentError):
    """A seal key holds a seal other than the one its period's records give: never chained onto."""


def seal_retention(keep_days: int, now: datetime) -> Retention:
    """A seal's lock: COMPLIANCE for `keep_days`, the longest retention the policy can decide.

    To the whole second, so the date the seal states and the lock S3 reports are the same."""
    return Retention(mode="COMPLIANCE", until=(now + timedelta(days=keep_days)).replace(microsecond=0))


@dataclass(frozen=True)
class FoundSeal:
    """A seal key, the period start it names, and every version and delete marker there."""

    key: str
    period_start: datetime
    versions: KeyVersions

    @property
    def original(self) -> ObjectVersion | None:
        return self.versions.original

    @property
    def later(self) -> list[ObjectVersion]:
        return self.versions.later


def list_seals(store: ObjectStore, prefix: str) -> list[FoundSeal]:
    """Every seal key (period seals and older day seals), by the period start its key names.

    From a versions listing, so a seal hidden under a delete marker is still found."""
    found = [FoundSeal(key, start, versions)
             for key, versions in versions_by_key(store, f"{prefix}{layout.AUDIT_SEALS}").items()
             if (start := layout.parse_seal_key(prefix, key)) is not None]
    return sorted(found, key=lambda seal: (seal.period_start, seal.key))


@dataclass(frozen=True)
class Sealed:
    """One period sealed (or found sealed with the same content) by a run."""

    key: str
    period_start: datetime
    period_seconds: int
    count: int
    sha256: str
    written: bool


@dataclass(frozen=True)
class PeriodLeaves:
    leaves: list[tuple[str, str]]
    # Keys of records the period holds that have a later version or delete marker over them.
    tampered: list[str]
    # Keys of entries stamped in the period that the audit key does not authenticate: not sealed.
    unauthenticated: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class _EntryRead:
    """An entry key at its original version: its SHA-256, when it was stamped, whether anything stands over it,
    and whether the audit key authenticates it."""

    sha256: str
    at: datetime
    rewritten: bool
    authentic: bool = True


@dataclass
class _RunCache:
    """Versions listings and entries one run has read, each once (a run may seal many periods of one day)."""

    store: ObjectStore
    key: AuditKey | None = None
    listings: dict[str, dict[str, KeyVersions]] = field(default_factory=dict)
    entries: dict[str, _EntryRead | None] = field(default_factory=dict)

    def of(self, prefix: str) -> dict[str, KeyVersions]:
        if prefix not in self.listings:
            self.listings[prefix] = versions_by_key(self.store, prefix)
        return self.listings[prefix]

    def entry(self, key: str) -> _EntryRead | None:
        """The entry at `key` as first written; None when nothing was (its index rows are stale)."""
        if key not in self.entries:
            found = versions_by_key(self.store, key).get(key)
            if found is None or found.original is None:
                self.entries[key] = None
            else:
                body = self.store.get_bytes(key, found.original.version_id)
                authentic = True
                try:
                    entry = chain.Entry.parse(key, body, found.original.last_modified)
                    at = datetime.fromisoformat(entry.at).astimezone(UTC)
                    authentic = self.key is None or self.key.problem(entry) is None
                except ValueError:
                    at = _made(found.original)  # not an entry: sealed as found, where S3 stamped it
                self.entries[key] = _EntryRead(chain.sha256_hex(body), at, bool(found.later), authentic)
        return self.entries[key]


def _made(version: ObjectVersion) -> datetime:
    return (version.last_modified or datetime.min.replace(tzinfo=UTC)).astimezone(UTC)


def period_leaves(store: ObjectStore, prefix: str, start: datetime, end: datetime, *, ledger_since: datetime,
                  cache: _RunCache | None = None) -> PeriodLeaves:
    """The leaves of the period [start, end) (see the module's docstring) and what was rewritten over them."""
    cache = cache or _RunCache(store)
    day = start.astimezone(UTC).date()
    rows = cache.of(layout.partition_prefix(prefix, layout.AUDIT_INDEX, day.isoformat()))
    # An entry's row is written after its stamp, so rows S3 stamped before the period are not its.
    rows_of: dict[str, list[str]] = {}
    for row_key, versions in rows.items():
        located = layout.parse_index_key(prefix, row_key)
        if located is not None and versions.original is not None and _made(versions.original) >= start - CLOCK_SLACK:
            rows_of.setdefault(layout.chain_key(prefix, *located), []).append(row_key)
    leaves: list[tuple[str, str]] = []
    tampered: list[str] = []
    unauthenticated: list[str] = []
    with ThreadPoolExecutor(READERS) as pool:
        for entry_key, read in zip(sorted(rows_of), pool.map(cache.entry, sorted(rows_of)), strict=True):
            if read is None or not start <= read.at < end:
                continue
            if not read.authentic:  # not recvault's: never sealed, so verify finds it unsealed
                unauthenticated.append(entry_key)
                continue
            leaves.append((entry_key, read.sha256))
            leaves += [(row, chain.EMPTY_SHA256) for row in rows_of[entry_key] if row.endswith(f"-{read.sha256[:16]}")]
            if read.rewritten:
                tampered.append(entry_key)
        ledger = [(key, versions) for folder_day in (day - timedelta(days=1), day)
                  for key, versions in cache.of(layout.partition_prefix(prefix, layout.AUDIT_ACCEPTED,
                                                                        folder_day.isoformat())).items()
                  if versions.original is not None and ledger_since <= _made(versions.original) < end]

        def ledger_leaf(item: tuple[str, KeyVersions]) -> tuple[str, str]:
            key, versions = item
            assert versions.original is not None
            return key, chain.sha256_hex(store.get_bytes(key, versions.original.version_id))

        leaves += pool.map(ledger_leaf, ledger)
    tampered += [key for key, versions in ledger if versions.later]
    return PeriodLeaves(sorted(leaves), sorted(tampered), unauthenticated)


def _first_day(store: ObjectStore, prefix: str) -> date | None:
    """The first day anything was indexed or accepted: where sealing starts on an archive with no seal."""
    days = [found[1] for folder in (layout.AUDIT_INDEX, layout.AUDIT_ACCEPTED)
            for name in store.list_folders(f"{prefix}{folder}") if (found := layout.PARTITION.search(name))]
    return date.fromisoformat(min(days)) if days else None


@dataclass
class _Run:
    """What one sealing run shares: where, with which lock, and its listings."""

    store: ObjectStore
    prefix: str
    now: datetime
    retention: Retention
    witness: Witness | None
    cache: _RunCache

    def report(self, action: str, details: Mapping[str, object]) -> None:
        write_system_audit(self.store, self.prefix, action, dict(details), self.now)

    def compute(self, start: datetime, seconds: int, prev: str, ledger_since: datetime) -> tuple[bytes, PeriodLeaves]:
        end = start + timedelta(seconds=seconds)
        found = period_leaves(self.store, self.prefix, start, end, ledger_since=ledger_since, cache=self.cache)
        return chain.seal_bytes(start, seconds, found.leaves, prev, self.now, self.retention.until), found

    def conflict(self, key: str, found: bytes | None, computed: bytes) -> SealConflict:
        details = {"key": key, "found_sha256": chain.sha256_hex(found) if found is not None else None,
                   "computed_sha256": chain.sha256_hex(computed)}
        log.error("a seal key holds a seal other than the one its period's records give; not chained onto",
                  extra=details)
        self.report("seal-conflict", details)
        return SealConflict(f"{key} holds a seal (SHA-256 {details['found_sha256']}) other than the one its "
                            f"period's records give ({details['computed_sha256']}); sealing stops here")

    def tampering(self, start: datetime, keys: list[str], unauthenticated: list[str] | None = None) -> None:
        """One `seal-found-tampering` entry: records sealed at their original version (`keys`), and
        entries left out of the seal because the audit key does not authenticate them."""
        if keys:
            log.error("records sealed at their original version: later versions or delete markers over them",
                      extra={"period_start": start.isoformat(), "keys": keys})
        if unauthenticated:
            log.error("entries recvault did not write (no valid MAC under the audit key): not sealed",
                      extra={"period_start": start.isoformat(), "unauthenticated": unauthenticated})
        if keys or unauthenticated:
            details: dict[str, object] = {"period_start": start.isoformat(), "keys": keys}
            if unauthenticated:
                details["unauthenticated"] = unauthenticated
            self.report("seal-found-tampering", details)

    def record(self, key: str, seal: chain.Seal, body: bytes, *, written: bool) -> None:
        """The `period-sealed` system entry (for a seal this run wrote), then the witness's copy."""
        if written:
            self.report("period-sealed", {"key": key, "period_start": seal.period_start.isoformat(),
                                          "period_seconds": seal.period_seconds, "leaves": len(seal.leaves),
                                          "seal_sha256": seal.sha256})
        if self.witness is not None:
            self.witness.record(key, body, self.retention)


def _seal_one(run: _Run, start: datetime, seconds: int, prev: str, ledger_since: datetime) -> Sealed:
    """Seal one period, or find it sealed with the same content; SealConflict when it holds other content."""
    key = layout.seal_key(run.prefix, start)
    body, found = run.compute(start, seconds, prev, ledger_since)
    try:
        run.store.put_bytes(key, body, content_type="application/json", retention=run.retention)
        written = True
    except AlreadyExists:
        existing = original_bytes(run.store, key)
        if existing is None or not _same(existing, body):
            raise run.conflict(key, existing, body) from None
        body, written = existing, False
    seal = chain.Seal.parse(body)
    if written:  # reported once, by the run that wrote the seal
        run.tampering(start, found.tampered, found.unauthenticated)
    run.record(key, seal, body, written=written)
    log.info("audit period sealed", extra={"key": key, "leaves": len(seal.leaves), "written": written})
    return Sealed(key, start, seconds, len(seal.leaves), seal.sha256, written)


def _same(found: bytes, computed: bytes) -> bool:
    try:
        return chain.Seal.parse(found).content() == chain.Seal.parse(computed).content()
    except ValueError:
        return False


def _recorded(run: _Run, head: FoundSeal, sha256: str) -> bool:
    """Whether this seal is known to be the sealer's: the witness holds it, or (without a witness)
    a `period-sealed` system entry names it."""
    if run.witness is not None:
        witnessed = run.witness.find(head.key)
        return witnessed is not None and witnessed.get("sha256") == sha256
    assert head.original is not None
    made = _made(head.original).date()
    # The entry is stamped when its run began, the seal a moment later; clocks may differ.
    for day in (made, made - timedelta(days=1), made + timedelta(days=1)):
        name = chain.system_chain(day.isoformat())
        entries = sorted(((parsed[1], found) for key, found in versions_by_key(
            run.store, layout.chain_prefix(run.prefix, name)).items()
            if (parsed := layout.parse_chain_key(run.prefix, key)) and found.original is not None), reverse=True)
        for _, found in entries[:RECORD_LOOKBACK]:
            assert found.original is not None
            try:
                entry = chain.Entry.parse(found.key, run.store.get_bytes(found.key, found.original.version_id),
                                          found.original.last_modified)
            except ValueError:
                continue
            if run.cache.key is not None and run.cache.key.problem(entry) is not None:
                continue  # not the sealer's record
            if entry.action == "period-sealed" and entry.details.get("seal_sha256") == sha256:
                return True
    return False


def _check_head(run: _Run, seals: list[FoundSeal]) -> tuple[chain.Seal, list[str]] | None:
    """The last seal, checked before anything is chained onto it: a seal the sealer cannot find
    recorded is computed again and must come out the same. Returns it and the seal keys found
    rewritten or hidden (its original is what counts), or None when there is no seal."""
    written = [seal for seal in seals if seal.original is not None]
    if not written:
        return None
    head = written[-1]
    assert head.original is not None
    body = run.store.get_bytes(head.key, head.original.version_id)
    try:
        seal = chain.Seal.parse(body)
    except ValueError:
        raise run.conflict(head.key, body, b"") from None
    tampered = [head.key] if head.later else []
    if seal.day_seal:
        # Older releases' day seals cannot be computed again; one is trusted only as what an
        # archive sealed before period seals ends with, never after a period seal.
        if head.key != layout.day_seal_key(run.prefix, f"{seal.period_start:%Y-%m-%d}") or any(
                layout.day_seal_key(run.prefix, f"{found.period_start:%Y-%m-%d}") != found.key for found in written):
            raise run.conflict(head.key, body, b"")
        return seal, tampered
    if _recorded(run, head, seal.sha256):
        return seal, tampered
    before = _parsed(run.store, written[-2]) if len(written) > 1 else None
    prev = before.sha256 if before is not None else chain.seal_genesis()
    since = head.period_start if before is not None and not before.day_seal else datetime.min.replace(tzinfo=UTC)
    computed, _ = run.compute(head.period_start, seal.period_seconds, prev, since)
    if head.period_start != seal.period_start or not _same(body, computed):
        raise run.conflict(head.key, body, computed)
    log.info("audit seal found written and not recorded; recorded now", extra={"key": head.key})
    run.record(head.key, seal, body, written=True)
    return seal, tampered


def _parsed(store: ObjectStore, found: FoundSeal) -> chain.Seal | None:
    assert found.original is not None
    try:
        return chain.Seal.parse(store.get_bytes(found.key, found.original.version_id))
    except ValueError:
        return None


def seal_through(store: ObjectStore, prefix: str, through: datetime, *, keep_days: int, now: datetime | None = None,
                 period_seconds: int = DEFAULT_PERIOD_SECONDS, witness: Witness | None = None,
                 max_periods: int = MAX_PERIODS_PER_RUN, audit_key: AuditKey | None = None) -> list[Sealed]:
    """Seal every period not sealed yet up to and including the one that holds `through`, oldest first.

    Sealing starts after the last seal (at the first day anything was indexed or accepted when
    there is none), each period chained to the seal before it. SealConflict when a seal key
    holds other content than its period's records give. `audit_key`: the audit key (audit.signing); with
    one, an entry it does not authenticate is left out of its period's seal and reported.
    """
    now = now or datetime.now(UTC)
    run = _Run(store, prefix, now, seal_retention(keep_days, now), witness, _RunCache(store, audit_key))
    checked = _check_head(run, list_seals(store, prefix))
    if checked is not None:
        head, tampered = checked
        cursor, prev = head.period_end, head.sha256
        since = cursor if not head.day_seal else datetime.min.replace(tzinfo=UTC)
    else:
        first = _first_day(store, prefix)
        if first is None:
            return []
        tampered, prev = [], chain.seal_genesis()
        cursor = datetime(first.year, first.month, first.day, tzinfo=UTC)
        since = datetime.min.replace(tzinfo=UTC)
    deadline = time.monotonic() + RUN_BUDGET.total_seconds()
    sealed: list[Sealed] = []
    while cursor <= through and len(sealed) < max_periods and time.monotonic() < deadline:
        end = chain.period_end(cursor, period_seconds)
        result = _seal_one(run, cursor, int((end - cursor).total_seconds()), prev, since)
        if tampered and result.written:  # the new seal links to the original under them
            run.tampering(cursor, tampered)
            tampered = []
        sealed.append(result)
        cursor, prev, since = end, result.sha256, end
    return sealed


def seal_pending(store: ObjectStore, prefix: str, keep_days: int, now: datetime, *,
                 period_seconds: int = DEFAULT_PERIOD_SECONDS, witness: Witness | None = None,
                 audit_key: AuditKey | None = None) -> list[Sealed]:
    """Seal every period that ended at least GRACE ago and is not sealed yet (what beat's task runs)."""
    through = now - GRACE - timedelta(seconds=period_seconds)
    return seal_through(store, prefix, through, keep_days=keep_days, now=now, period_seconds=period_seconds,
                        witness=witness, audit_key=audit_key)
