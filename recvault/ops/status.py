"""The figures of the status page, from the archive's recent documents and the broker."""

from __future__ import annotations

import logging
import math
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import redis

from recvault import layout
from recvault.errors import RecvaultError
from recvault.ops.broker_view import BrokerView, Letter
from recvault.ops.cache import Expiring
from recvault.ops.entries import COMPLETED, Entry
from recvault.ops.view import ArchiveView, Budget
from recvault.queue.depth import QueueDepth

log = logging.getLogger("recvault.ops")

# Days of partitions the page covers (minutes and cost per day), and hours of archives per hour.
WINDOW_DAYS = 7
WINDOW_HOURS = 24
# Recent recordings listed on the page.
RECENT = 25
# Seconds the figures are reused: a page refresh, or several people looking, costs one read.
FIGURES_SECONDS = 5.0
PERCENTILES = (50, 90, 99)
IN_PROGRESS = "in-progress"
# Twilio's prices have 4 decimals.
PRICE_UNITS = 10_000


@dataclass(frozen=True)
class Day:
    """One day of recordings (by recording start date, UTC)."""

    date: str
    recordings: int
    minutes: float
    cost: dict[str, float]


@dataclass(frozen=True)
class Recent:
    """One line of the recent recordings table."""

    sid: str
    status: str
    at: datetime | None
    day: str | None = None
    duration: int | None = None
    source: str | None = None
    latency_seconds: float | None = None
    detail: str | None = None


@dataclass
class StatusFigures:
    """Everything the status page shows."""

    generated_at: datetime
    hours: list[tuple[datetime, int]]
    days: list[Day]
    latency: dict[str, float]
    latency_count: int
    failures: list[tuple[str, str, int]]
    dead_letters_total: int | None
    dead_letters_by_error: list[tuple[str, int, str]]
    recent: list[Recent]
    queue: QueueDepth | None
    documents_read: int
    documents_unread: int
    problems: list[str] = field(default_factory=list)

    @property
    def archived_last_hours(self) -> int:
        return sum(count for _, count in self.hours)


class StatusReader:
    """Computes StatusFigures at most every FIGURES_SECONDS."""

    def __init__(self, view: ArchiveView, broker: BrokerView | None) -> None:
        self.view = view
        self.broker = broker
        self._cache: Expiring[str, StatusFigures] = Expiring(FIGURES_SECONDS, size=1)

    def figures(self) -> StatusFigures:
        return self._cache.get("figures", self._compute)

    def _compute(self) -> StatusFigures:
        now = self.view.clock().astimezone(UTC)
        problems: list[str] = []
        entries, unread = self._entries(now, problems)
        queue, letters_total, letters = self._broker(problems)
        hours = per_hour(entries, now)
        recent = [Recent(e.sid, e.status, e.done_at, e.date, e.duration, e.source, e.latency_seconds,
                         f"error {e.error_code}" if e.error_code else None) for e in entries]
        recent += [Recent(letter.recording_sid or letter.id, "dead-lettered", letter.failed_at,
                          detail=f"{letter.error}: {letter.reason_kind}") for letter in letters]
        recent.sort(key=lambda r: r.at or datetime.min.replace(tzinfo=UTC), reverse=True)
        latencies = sorted(e.latency_seconds for e in entries if e.latency_seconds is not None
                           and e.done_at is not None and e.done_at >= now - timedelta(hours=WINDOW_HOURS))
        return StatusFigures(
            generated_at=now, hours=hours, days=per_day(entries, now), latency=percentiles(latencies),
            latency_count=len(latencies), failures=failures(entries), dead_letters_total=letters_total,
            dead_letters_by_error=by_error(letters), recent=recent[:RECENT], queue=queue,
            documents_read=len(entries), documents_unread=unread, problems=problems,
        )

    def _entries(self, now: datetime, problems: list[str]) -> tuple[list[Entry], int]:
        first = (now - timedelta(days=WINDOW_DAYS - 1)).strftime("%Y-%m-%d")
        budget, entries, unread = Budget(), [], 0
        try:
            for folder in (layout.METADATA, layout.EVENTS):
                for day in (d for d in self.view.days(folder) if d >= first):
                    listed = [item for item in self.view.listing(folder, day) if _worth_reading(self.view, item.key)]
                    read, _ = self.view.entries(listed, budget)
                    entries += [entry for _, entry in read if entry is not None]
                    unread += len(listed) - len(read)
        except RecvaultError as error:
            problems.append(f"archive unreadable: {error}")
        return entries, unread

    def _broker(self, problems: list[str]) -> tuple[QueueDepth | None, int | None, list[Letter]]:
        if self.broker is None:
            return None, None, []
        try:
            letters = self.broker.dead_letters()
            return self.broker.depth(), letters.total, letters.read
        except redis.RedisError as error:
            problems.append(f"broker unreachable: {type(error).__name__}")
            return None, None, []


def _worth_reading(view: ArchiveView, key: str) -> bool:
    """Not the in-progress events (nearly every recording has one, and the page shows none)."""
    event = layout.parse_event_key(view.prefix, key)
    return event is None or event[2] != IN_PROGRESS


def per_hour(entries: list[Entry], now: datetime) -> list[tuple[datetime, int]]:
    """Recordings archived in each of the last WINDOW_HOURS hours, oldest first."""
    top = now.replace(minute=0, second=0, microsecond=0)
    hours = [top - timedelta(hours=n) for n in range(WINDOW_HOURS - 1, -1, -1)]
    counts = Counter(e.done_at.astimezone(UTC).replace(minute=0, second=0, microsecond=0)
                     for e in entries if e.status == COMPLETED and e.done_at is not None)
    return [(hour, counts.get(hour, 0)) for hour in hours]


def per_day(entries: list[Entry], now: datetime) -> list[Day]:
    """Recordings, minutes and Twilio cost (by price unit) per day of the window, oldest first."""
    recordings: Counter[str] = Counter()
    seconds: Counter[str] = Counter()  # whole seconds, as Twilio reports durations
    cost: defaultdict[str, defaultdict[str, float]] = defaultdict(lambda: defaultdict(float))
    for entry in entries:
        if entry.status != COMPLETED:
            continue
        recordings[entry.date] += 1
        seconds[entry.date] += entry.duration or 0
        if entry.price is not None:
            # Twilio reports charges as negative prices, to 4 decimals: summed in those units, exactly.
            cost[entry.date][entry.price_unit or "USD"] -= round(entry.price * PRICE_UNITS)
    days = [(now - timedelta(days=n)).strftime("%Y-%m-%d") for n in range(WINDOW_DAYS - 1, -1, -1)]
    return [Day(d, recordings[d], seconds[d] / 60, {unit: units / PRICE_UNITS for unit, units in cost[d].items()})
            for d in days]


def percentiles(values: list[float]) -> dict[str, float]:
    """Nearest-rank percentiles of sorted `values`, and their maximum (empty: none)."""
    if not values:
        return {}
    figures = {f"p{p}": values[max(0, math.ceil(p / 100 * len(values)) - 1)] for p in PERCENTILES}
    figures["max"] = values[-1]
    return figures


def failures(entries: list[Entry]) -> list[tuple[str, str, int]]:
    """(status, Twilio error code, count) of recordings that ended without media, most first."""
    counts = Counter((e.status, str(e.error_code or "-")) for e in entries
                     if e.status not in (COMPLETED, IN_PROGRESS))
    return [(status, code, n) for (status, code), n in counts.most_common()]


def by_error(letters: list[Letter]) -> list[tuple[str, int, str]]:
    """(error class, count, most recent reason) of dead letters, most first."""
    counts = Counter(letter.error for letter in letters)
    latest: dict[str, Letter] = {}
    for letter in letters:
        seen = latest.get(letter.error)
        if seen is None or (letter.failed_at or datetime.min.replace(tzinfo=UTC)) > \
                (seen.failed_at or datetime.min.replace(tzinfo=UTC)):
            latest[letter.error] = letter
    return [(error, n, latest[error].reason_kind) for error, n in counts.most_common()]
