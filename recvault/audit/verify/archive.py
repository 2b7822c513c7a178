"""`recvault audit verify`: everything an auditor asks of the archive over a range of days.

Every object version under recvault's folders must be vouched for: by a chain entry naming
its key, version or SHA-256, and every entry by a seal (or, for the open period, by the
day's index). Each check reads what was first written (original versions), so a version
stacked later by anyone with PutObject is a finding, never the record:

* the audit trail: chains (links, numbering, nothing stacked over an entry, each entry's MAC
  when an audit key is set), seals (roots,
  leaves, the chain of seals, their COMPLIANCE lock, the witness) — audit.verify.trail;
* every archived recording against its `archived` entry: media version, size, S3 checksum,
  SHA-256 re-hashed from the stored bytes (all, or a sample), every document version
  vouched for, the lock, legal hold and tags decided — audit.verify.recordings;
* every object written once holds one version — audit.verify.written_once; tombstones and
  the holds registry vouched for — recvault.compliance;
* completeness: every completed callback in the ledger (S3, and the Redis tail when the
  broker answers) has an outcome recvault vouches for — audit.verify.completeness.

A legal hold set with `recvault hold set` is expected on the recordings it covers, and media
whose retention has ended with no hold left may be gone (S3 lifecycle expiry): counted as
expired, not reported.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

from recvault import layout
from recvault.audit import chain
from recvault.audit.append import trusted
from recvault.audit.findings import Finding
from recvault.audit.ledger import AcceptedRow
from recvault.audit.ledger_flush import rejected_rows
from recvault.audit.originals import versions_by_key
from recvault.audit.signing import AuditKey
from recvault.audit.verify.completeness import accepted_rows, completeness_findings
from recvault.audit.verify.recordings import Recording, check_recording
from recvault.audit.verify.trail import SealCoverage, TrailResult, check_chains, check_seals, check_unsealed_index
from recvault.audit.verify.written_once import written_once_findings
from recvault.audit.vouched import archived_entry
from recvault.compliance.erasure import request_findings
from recvault.compliance.holds import held_recordings, list_holds, registry_findings
from recvault.compliance.tombstones import tombstone_findings
from recvault.storage.base import ObjectStore

# Recordings and chains checked at once: each is a few small requests (and a re-hash, streamed
# in 1 MiB chunks, so memory stays bounded by this many chunks).
READERS = 16
Progress = Callable[[int, int, str], None]


@dataclass(frozen=True)
class Sample:
    """Which recordings get their bytes re-hashed: all (None), a count, or a fraction."""

    count: int | None = None
    fraction: float | None = None

    def choose(self, total: int, rng: random.Random) -> set[int]:
        if self.count is not None:
            return set(rng.sample(range(total), min(self.count, total)))
        if self.fraction is not None:
            return {i for i in range(total) if rng.random() < self.fraction}
        return set(range(total))


@dataclass
class Report:
    """The outcome of one verification run, as report.json holds it."""

    date_from: str
    date_to: str
    started_at: str
    finished_at: str = ""
    findings: list[Finding] = field(default_factory=list)
    per_day: dict[str, dict[str, int]] = field(default_factory=dict)
    totals: dict[str, int] = field(default_factory=dict)
    # Media keys whose retention ended with no hold, found gone: lifecycle expiry, not tampering.
    expired: set[str] = field(default_factory=set)
    # What the run covered, for the auditor's report: the seals it checked (key, period, root,
    # SHA-256), the witness, the ledger tail, and what it could not cover.
    seals: list[dict[str, Any]] = field(default_factory=list)
    witness: str = "none configured"
    ledger_tail: str = "not read"
    not_covered: list[str] = field(default_factory=list)
    sampled: bool = False

    @property
    def clean(self) -> bool:
        return not self.findings

    def count(self, day: str, what: str, n: int = 1) -> None:
        self.per_day.setdefault(day, {})
        self.per_day[day][what] = self.per_day[day].get(what, 0) + n
        self.totals[what] = self.totals.get(what, 0) + n

    def as_json(self) -> dict[str, Any]:
        return {"range": {"from": self.date_from, "to": self.date_to}, "started_at": self.started_at,
                "finished_at": self.finished_at, "clean": self.clean, "totals": self.totals,
                "per_day": self.per_day, "findings": [f.__dict__ for f in self.findings], "seals": self.seals,
                "witness": self.witness, "ledger_tail": self.ledger_tail, "not_covered": self.not_covered,
                "sampled": self.sampled}


def first_day(store: ObjectStore, prefix: str) -> str | None:
    """The earliest day anything was archived, recorded or accepted (None: an empty archive)."""
    days = [found[1] for folder in (layout.METADATA, layout.EVENTS, layout.AUDIT_INDEX, layout.AUDIT_ACCEPTED)
            for name in store.list_folders(f"{prefix}{folder}") if (found := layout.PARTITION.search(name))]
    return min(days) if days else None


def day_range(date_from: str, date_to: str) -> list[str]:
    first, last = date.fromisoformat(date_from), date.fromisoformat(date_to)
    return [(first + timedelta(days=n)).isoformat() for n in range((last - first).days + 1)]


def _keys(store: ObjectStore, prefix: str, folder: str, day: str) -> list[str]:
    return list(store.list_keys(layout.partition_prefix(prefix, folder, day)))


def verify_archive(store: ObjectStore, prefix: str, date_from: str, date_to: str, *, sample: Sample | None = None,
                   progress: Progress | None = None, seed: int | None = None,
                   tail: Iterable[AcceptedRow] | None = None,
                   malformed_tail: Iterable[tuple[str, bytes]] | None = None, witness: Any = None,
                   audit_key: AuditKey | None = None) -> Report:
    """Run every check over [date_from, date_to] (UTC days, by recording start / action / acceptance).

    `tail`: the ledger rows still in Redis (None: the broker was not reachable, and the report
    says what that leaves out), `malformed_tail` the ones there that do not parse; `witness`: the seals' outside
    copies (audit.witness), if any; `audit_key`: the audit key (audit.signing), if one is set: every entry
    it must authenticate is checked against it.
    """
    report = Report(date_from, date_to, datetime.now(UTC).isoformat())
    days = day_range(date_from, date_to)
    tick = progress or (lambda done, total, label: None)
    documents = {day: versions_by_key(store, layout.partition_prefix(prefix, layout.METADATA, day)) for day in days}
    media = {day: versions_by_key(store, layout.partition_prefix(prefix, layout.MEDIA, day)) for day in days}
    listed = [(day, document_of[1], found) for day in days for key, found in documents[day].items()
              if (document_of := layout.parse_metadata_key(prefix, key))]
    events = [(day, event_of) for day in days for key in _keys(store, prefix, layout.EVENTS, day)
              if (event_of := layout.parse_event_key(prefix, key))]
    chosen = (sample or Sample()).choose(len(listed), random.Random(seed))
    report.sampled = len(chosen) < len(listed)
    trail = TrailResult()
    seals = check_seals(store, prefix, days, trail, witness=witness, audit_key=audit_key)
    chains = {sid for _, sid, _ in listed} | {parsed[1] for _, parsed in events}
    chains |= {chain.system_chain(day) for day in days}
    chains |= {located[0] for key in seals.leaves if (located := layout.parse_chain_key(prefix, key))}
    # Every chain the days' index rows name, so a recording whose documents are gone is still walked.
    chains |= {located[0] for day in days for key in _keys(store, prefix, layout.AUDIT_INDEX, day)
               if (located := layout.parse_index_key(prefix, key))}
    total = len(listed) + len(chains) + 1
    done = 0

    def one_chain(name: str) -> TrailResult:
        found = TrailResult()
        check_chains(store, prefix, [name], seals, found, days=set(days), audit_key=audit_key)
        return found

    with ThreadPoolExecutor(READERS) as pool:
        for found in pool.map(one_chain, sorted(chains)):
            trail.merge(found)
            done += 1
            tick(done, total, "audit chains")
    check_unsealed_index(store, prefix, days, trail)
    report.findings.extend(trail.findings)
    for day, count in trail.entries_by_day.items():
        report.count(day, "audit_entries", count)
    held = held_recordings(list_holds(store, prefix))
    now = datetime.now(UTC)

    def one_recording(item: tuple[int, tuple[str, str, Any]]) -> tuple[str, Any]:
        position, (day, sid, found) = item
        recording = Recording(sid, day, found, media[day], trusted(trail.entries_by_chain.get(sid, []), audit_key))
        return day, check_recording(store, recording, rehash=position in chosen, held=sid in held, now=now)

    with ThreadPoolExecutor(READERS) as pool:
        for day, checked in pool.map(one_recording, enumerate(listed)):
            report.count(day, "recordings")
            report.count(day, "versions_listed", checked.versions)
            report.count(day, "rehashed", int(checked.rehashed))
            if checked.expired_media:
                report.expired.add(checked.expired_media)
                report.count(day, "expired")
            report.findings.extend(checked.findings)
            done += 1
            tick(done, total, "recordings")
    for event_day, (_, _, status) in events:
        report.count(event_day, f"events_{status}")
    media_checked = {key for day in days for key in media[day]}
    once, versions = written_once_findings(store, prefix, days, skip=media_checked)
    report.findings.extend(once)
    report.totals["versions_listed"] = report.totals.get("versions_listed", 0) + versions
    genuine, forged = tombstone_findings(store, prefix)
    report.findings.extend(forged)
    report.findings.extend(registry_findings(store, prefix))
    report.findings.extend(request_findings(store, prefix))
    for key, record in rejected_rows(store, prefix, days):
        report.findings.append(Finding("ledger", key, "a malformed accepted-callback row, set aside by the ledger "
                                       "flush: what it named is not held to account", {"key": key, **record},
                                       kind="rejected-ledger-row"))
    for stream_id, raw in malformed_tail or []:
        report.findings.append(Finding("ledger", stream_id, "a malformed accepted-callback row still in Redis",
                                       {"id": stream_id, "raw": raw.decode(errors="replace")},
                                       kind="rejected-ledger-row"))
    accepted = accepted_rows(store, prefix, days, tail or [])
    report.totals.update(accepted_rows=accepted.rows, ledger_tail_rows=accepted.tail_rows,
                         accepted_completed=len(accepted.completed))
    report.findings.extend(accepted.malformed)
    vanished = completeness_findings(store, prefix, days, accepted, genuine)
    report.findings.extend(vanished)
    # Archived ones the ledger does not name (reconcile's, or a ledger row gone): their chain says so.
    known = {sid for _, sid, _ in listed} | genuine | {finding.subject for finding in vanished}
    report.findings.extend(_documents_gone(store, prefix, days, trail, known, now, audit_key))
    _describe_coverage(report, seals, tail is not None, witness, audit_key is not None)
    tick(total, total, "completeness")
    report.finished_at = datetime.now(UTC).isoformat()
    return report


def _documents_gone(store: ObjectStore, prefix: str, days: list[str], trail: TrailResult, known: set[str],
                    now: datetime, audit_key: AuditKey | None) -> list[Finding]:
    """Recordings whose chain says they were archived on these days and whose metadata document is
    gone, every version of it: removed, unless expired. `known`: recordings already accounted for
    (their document checked, a vouched tombstone) or already reported."""
    findings = []
    for sid, entries in sorted(trail.entries_by_chain.items()):
        archived = archived_entry(trusted(entries, audit_key))
        if archived is None or archived.day not in days or sid in known:
            continue
        media_key = str(archived.details.get("media_key") or "")
        partition = layout.PARTITION.search(media_key)
        if partition is None:
            continue
        document_key = layout.metadata_key(prefix, partition[1], sid)
        if versions_by_key(store, document_key).get(document_key) is not None:
            continue  # there, in a day outside this range: checked with its own day
        until = archived.details.get("retain_until")
        if until and datetime.fromisoformat(str(until)) <= now and not archived.details.get("legal_hold"):
            continue  # its retention is over: expiry may have taken it
        findings.append(Finding("object", sid, "archived (its `archived` entry says so), and its metadata "
                                "document is gone, every version of it", {"document": document_key,
                                                                         "media_key": media_key,
                                                                         "archived_entry": archived.key},
                                kind="vanished-recording"))
    return findings


def _describe_coverage(report: Report, seals: SealCoverage, tail_read: bool, witness: Any, keyed: bool) -> None:
    report.seals = seals.roots
    report.totals["seals_checked"] = len(seals.roots)
    report.witness = str(witness) if witness is not None else "none configured"
    if seals.sealed_until is None:
        report.not_covered.append("no period of these days is sealed yet: entries are held to the daily index only")
    else:
        report.not_covered.append(f"entries after {seals.sealed_until.isoformat()} are not sealed yet (the open "
                                  "period): held to the daily index only")
    if witness is None:
        report.not_covered.append("no seal witness is configured (RECVAULT_SEAL_WITNESS): the seals are compared "
                                  "with nothing outside the bucket")
    if not keyed:
        report.not_covered.append("entries are not authenticated (RECVAULT_AUDIT_KEY unset): an entry appended by "
                                  "anyone with the S3 rights is taken as recvault's")
    if tail_read:
        report.ledger_tail = f"{report.totals.get('ledger_tail_rows', 0)} row(s) read from Redis"
    else:
        report.ledger_tail = "Redis not reachable"
        report.not_covered.append("the broker was not reachable: callbacks accepted since the last ledger flush "
                                  "(up to 15 minutes) are not held to account")
    if report.sampled:
        report.not_covered.append("media of recordings outside the sample was not re-hashed (size and S3 checksum "
                                  "only)")
