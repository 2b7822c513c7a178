"""`recvault audit verify`: everything an auditor asks of the archive over a range of days.

* the audit trail: chain links and numbering, seals (roots, leaves, the seal chain), every
  entry of a sealed day covered by its seal (audit.verify.trail);
* every archived recording: media present in the version the document recorded, the same
  size and S3 checksum, the same SHA-256 recomputed from the stored bytes (streamed; all of
  them, or a sample), the retention mode and date, legal hold and tags the policy decided;
* no delete marker over media, documents or audit entries;
* completeness: every `completed` callback in the accepted-callback ledger led to a metadata
  document, an `absent`/`failed` event document, a dead letter or (erased or purged since) a
  tombstone.

A legal hold set with `recvault hold set` is expected on the recordings it covers, and media
whose retention has ended with no hold left may be gone (S3 lifecycle expiry): counted as
expired, not reported.
"""

from __future__ import annotations

import json
import random
import re
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

from recvault import layout, sids
from recvault.audit import chain
from recvault.audit.findings import Finding
from recvault.audit.integrity import media_problems
from recvault.audit.verify.trail import TrailResult, check_chains, check_seals, check_unsealed_index
from recvault.compliance.holds import held_recordings, list_holds
from recvault.compliance.purge import expires_at
from recvault.storage.base import ObjectStore

# Recordings and chains checked at once: each is a few small requests (and a re-hash, streamed
# in 1 MiB chunks, so memory stays bounded by this many chunks).
READERS = 16
Progress = Callable[[int, int, str], None]
_SID = re.compile(sids.sid_pattern(sids.RECORDING))


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
                "per_day": self.per_day, "findings": [f.__dict__ for f in self.findings]}


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
                   progress: Progress | None = None, seed: int | None = None) -> Report:
    """Run every check over [date_from, date_to] (UTC days, by recording start / action / acceptance)."""
    report = Report(date_from, date_to, datetime.now(UTC).isoformat())
    days = day_range(date_from, date_to)
    tick = progress or (lambda done, total, label: None)
    documents = [(day, key) for day in days for key in _keys(store, prefix, layout.METADATA, day)]
    events = [(day, parsed) for day in days for key in _keys(store, prefix, layout.EVENTS, day)
              if (parsed := layout.parse_event_key(prefix, key))]
    chosen = (sample or Sample()).choose(len(documents), random.Random(seed))
    trail = TrailResult()
    seals = check_seals(store, prefix, days, trail)
    chains = {sid for _, key in documents if (p := layout.parse_metadata_key(prefix, key)) for sid in [p[1]]}
    chains |= {parsed[1] for _, parsed in events}
    chains |= {chain.system_chain(day) for day in days}
    chains |= {located[0] for leaves in seals.values() for key in leaves
               if (located := layout.parse_chain_key(prefix, key))}
    total = len(documents) + len(chains) + len(days)
    done = 0
    held = held_recordings(list_holds(store, prefix))
    now = datetime.now(UTC)

    def one_recording(item: tuple[int, tuple[str, str]]) -> Report:
        position, (day, key) = item
        found = Report(date_from, date_to, report.started_at)
        found.count(day, "recordings")
        _check_recording(store, key, rehash=position in chosen, report=found, day=day, held=held, now=now)
        return found

    with ThreadPoolExecutor(READERS) as pool:
        for checked in pool.map(one_recording, enumerate(documents)):
            report.findings.extend(checked.findings)
            report.expired |= checked.expired
            for day, counts in checked.per_day.items():
                for what, n in counts.items():
                    report.count(day, what, n)
            done += 1
            tick(done, total, "recordings")
    for event_day, (_, _, status) in events:
        report.count(event_day, f"events_{status}")
    def one_chain(name: str) -> TrailResult:
        found = TrailResult()
        check_chains(store, prefix, [name], seals, found, days=set(days))
        for key, version, latest in store.delete_markers(layout.chain_prefix(prefix, name)):
            found.findings.append(Finding("delete-marker", key, "an audit entry is hidden by a delete marker"
                                          if latest else "a delete marker was placed over an audit entry",
                                          {"marker_version_id": version, "is_latest": latest}))
        return found

    with ThreadPoolExecutor(READERS) as pool:
        for found in pool.map(one_chain, sorted(chains)):
            trail.findings.extend(found.findings)
            trail.entries += found.entries
            trail.archived |= found.archived
            for day, count in found.entries_by_day.items():
                trail.entries_by_day[day] = trail.entries_by_day.get(day, 0) + count
            done += 1
            tick(done, total, "audit chains")
    check_unsealed_index(store, prefix, days, trail)
    report.findings.extend(trail.findings)
    for _, key in documents:
        document_of = layout.parse_metadata_key(prefix, key)
        if document_of and document_of[1] not in trail.archived:
            report.findings.append(Finding("chain", document_of[1], "archived, but its audit chain has no "
                                           "`archived` entry", {"document": key}))
    for day, count in trail.entries_by_day.items():
        report.count(day, "audit_entries", count)
    report.totals["sealed_days"] = len(trail.sealed_days)
    for day in days:
        _check_markers(store, prefix, day, report, expired=report.expired)
        done += 1
        tick(done, total, "delete markers and completeness")
    _check_completeness(store, prefix, days, report)
    report.finished_at = datetime.now(UTC).isoformat()
    return report


def _check_recording(store: ObjectStore, key: str, *, rehash: bool, report: Report, day: str, held: set[str],
                     now: datetime) -> None:
    document = json.loads(store.get_bytes(key))
    sid = str(document.get("sid", key))
    media_key = str(document.get("media_key") or "")
    current = store.head(media_key)
    evidence = {"document": key, "media_key": media_key}
    ended = expires_at(document, None)
    if current is None and ended is not None and ended <= now and sid not in held and not document.get("legal_hold"):
        report.expired.add(media_key)
        report.count(day, "expired")
        return
    if current is None:
        report.findings.append(Finding("object", sid, "archived media is missing", evidence))
        return
    if rehash:
        report.count(day, "rehashed")
    for problem in media_problems(store, document, current, rehash=rehash):
        report.findings.append(Finding("object", sid, problem.what, {**evidence, **problem.evidence}))
    _check_lock(store, sid, media_key, document, current.retention, report, held=sid in held)


def _check_lock(store: ObjectStore, sid: str, media_key: str, document: dict[str, Any], lock: Any,
                report: Report, *, held: bool) -> None:
    mode, until, hold = layout.retention_fields(document)
    hold = hold or held  # the policy's hold, or one `recvault hold set` placed and has not released
    evidence: dict[str, Any] = {"media_key": media_key, "decided_mode": mode,
                                "decided_until": until.isoformat() if until else None, "decided_legal_hold": hold,
                                "found_mode": getattr(lock, "mode", None),
                                "found_until": str(getattr(lock, "until", None)),
                                "found_legal_hold": bool(getattr(lock, "legal_hold", False))}
    found_until = getattr(lock, "until", None)
    if getattr(lock, "mode", None) != mode:
        report.findings.append(Finding("retention", sid, "Object Lock mode differs from the policy's decision",
                                       evidence))
    elif until is not None and (found_until is None or abs((_utc(found_until) - _utc(until)).total_seconds()) > 1):
        report.findings.append(Finding("retention", sid, "retain-until differs from the policy's decision", evidence))
    if bool(getattr(lock, "legal_hold", False)) != hold:
        report.findings.append(Finding("retention", sid, "legal hold differs from the policy's decision and the "
                                       "hold registry", evidence))
    decided = document.get("tags") or {}
    found = store.get_tags(media_key)
    changed = {k: {"decided": v, "found": found.get(k)} for k, v in decided.items() if found.get(k) != v}
    if changed:
        report.findings.append(Finding("tags", sid, "tags differ from the policy's decision",
                                       {"media_key": media_key, "tags": changed}))


def _utc(moment: datetime) -> datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _check_markers(store: ObjectStore, prefix: str, day: str, report: Report, *, expired: set[str]) -> None:
    for folder in (layout.MEDIA, layout.METADATA, layout.EVENTS, layout.AUDIT_INDEX):
        for key, version, latest in store.delete_markers(layout.partition_prefix(prefix, folder, day)):
            if key in expired:  # S3 lifecycle expiry of media whose retention ended
                continue
            report.findings.append(Finding(
                "delete-marker", key, "an archived or audit object is hidden by a delete marker" if latest
                else "a delete marker was placed over an archived object",
                {"marker_version_id": version, "is_latest": latest}))


def _check_completeness(store: ObjectStore, prefix: str, days: list[str], report: Report) -> None:
    """Each distinct (RecordingSid, completed) the ledger holds for the range has an outcome."""
    accepted: dict[tuple[str, str], str] = {}
    for day in days:
        for key in _keys(store, prefix, layout.AUDIT_ACCEPTED, day):
            for line in store.get_bytes(key).splitlines():
                row = json.loads(line)
                accepted.setdefault((row["sid"], row["status"]), key)
                report.count(day, "accepted_rows")
    wide = day_range((date.fromisoformat(days[0]) - timedelta(days=1)).isoformat(),
                     (date.fromisoformat(days[-1]) + timedelta(days=1)).isoformat())
    archived = {p[1] for day in wide for key in _keys(store, prefix, layout.METADATA, day)
                if (p := layout.parse_metadata_key(prefix, key))}
    ended = {e[1] for day in wide for key in _keys(store, prefix, layout.EVENTS, day)
             if (e := layout.parse_event_key(prefix, key)) and e[2] in ("absent", "failed")}
    dead = {m[0] for key in store.list_keys(f"{prefix}{layout.DEAD_LETTERS}") for m in [_SID.search(key)] if m}
    # Erased on request or purged after retention: archived once, its tombstone says so.
    gone = {m[0] for key in store.list_keys(f"{prefix}{layout.TOMBSTONES}") for m in [_SID.search(key)] if m}
    completed = sorted(((sid, key) for (sid, status), key in accepted.items() if status == "completed"))
    report.totals["accepted_completed"] = len(completed)
    for sid, key in completed:
        if sid not in archived and sid not in ended and sid not in dead and sid not in gone:
            report.findings.append(Finding("completeness", sid, "callback accepted but never archived, "
                                           "recorded as absent/failed, dead-lettered or erased",
                                           {"ledger_object": key}))
