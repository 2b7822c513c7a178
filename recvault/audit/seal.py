"""Daily seals of the audit trail: a Merkle root over every entry written on a UTC day.

The sealer reads the day's index rows (written by the appender before each entry), keeps
each row whose entry exists and was written that day, and writes the seal create-only and
COMPLIANCE-locked for as long as the longest retention the policy can decide. Each seal
holds the previous day's seal hash, so the seals form a chain of their own. Running it
again for a sealed day changes nothing: the seal already there is read back.
"""

from __future__ import annotations

import json
import logging
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

from recvault import layout
from recvault.audit import chain
from recvault.audit.write import write_system_audit
from recvault.errors import AlreadyExists
from recvault.storage.base import ObjectStore, Retention

log = logging.getLogger("recvault.worker")

# Entries read at once while sealing: S3 answers each in milliseconds, a day may hold 10^5.
READERS = 16
# Days one run seals at most (a beat that was down for weeks catches up over several runs).
MAX_DAYS_PER_RUN = 31


def seal_retention(keep_days: int, now: datetime) -> Retention:
    """A seal's lock: COMPLIANCE for `keep_days`, the longest retention the policy can decide."""
    return Retention(mode="COMPLIANCE", until=now + timedelta(days=keep_days))


def day_leaves(store: ObjectStore, prefix: str, day: str) -> list[tuple[str, str]]:
    """(key, SHA-256) of every entry written on `day`, found through the day's index rows."""
    pointed = sorted({parsed for key in store.list_keys(layout.partition_prefix(prefix, layout.AUDIT_INDEX, day))
                      if (parsed := layout.parse_index_key(prefix, key)) is not None})

    def leaf(located: tuple[str, int]) -> tuple[str, str] | None:
        key = layout.chain_key(prefix, *located)
        if store.head(key) is None:
            return None  # a stale row: its writer never wrote the entry
        body = store.get_bytes(key)
        try:
            entry = chain.Entry.parse(key, body)
        except ValueError:
            return key, chain.sha256_hex(body)  # sealed as found; verify reports what it is
        return (key, entry.sha256) if entry.day == day else None

    with ThreadPoolExecutor(READERS) as pool:
        return [found for found in pool.map(leaf, pointed) if found is not None]


@dataclass(frozen=True)
class Sealed:
    day: str
    count: int
    sha256: str
    written: bool


def seal_day(store: ObjectStore, prefix: str, day: str, prev_seal: str, retention: Retention,
             now: datetime) -> Sealed:
    """Seal one day (or read back its seal when it exists)."""
    key = layout.seal_key(prefix, day)
    body = chain.seal_bytes(day, day_leaves(store, prefix, day), prev_seal, now)
    try:
        store.put_bytes(key, body, content_type="application/json", retention=retention)
        written = True
    except AlreadyExists:
        body, written = store.get_bytes(key), False
    return Sealed(day, int(json.loads(body)["count"]), chain.sha256_hex(body), written)


def sealed_days(store: ObjectStore, prefix: str) -> list[str]:
    return sorted(day for key in store.list_keys(f"{prefix}{layout.AUDIT_SEALS}")
                  if (day := layout.parse_seal_key(prefix, key)))


def days_to_seal(store: ObjectStore, prefix: str, now: datetime) -> list[str]:
    """Unsealed days from the day after the last seal (or the first indexed day) up to yesterday."""
    yesterday = now.astimezone(UTC).date() - timedelta(days=1)
    sealed = sealed_days(store, prefix)
    if sealed:
        first = date.fromisoformat(sealed[-1]) + timedelta(days=1)
    else:
        indexed = [m[1] for f in store.list_folders(f"{prefix}{layout.AUDIT_INDEX}")
                   if (m := layout.PARTITION.search(f))]
        if not indexed:
            return []
        first = date.fromisoformat(indexed[0])
    days: list[str] = []
    while first <= yesterday and len(days) < MAX_DAYS_PER_RUN:
        days.append(first.isoformat())
        first += timedelta(days=1)
    return days


def seal_pending(store: ObjectStore, prefix: str, keep_days: int, now: datetime) -> list[Sealed]:
    """Seal every day not sealed yet, oldest first, each chained to the one before."""
    sealed = sealed_days(store, prefix)
    prev = chain.sha256_hex(store.get_bytes(layout.seal_key(prefix, sealed[-1]))) if sealed else chain.seal_genesis()
    results = []
    retention = seal_retention(keep_days, now)
    for day in days_to_seal(store, prefix, now):
        result = seal_day(store, prefix, day, prev, retention, now)
        prev = result.sha256
        results.append(result)
        if result.written:
            write_system_audit(store, prefix, "day-sealed", {"date": day, "entries": result.count,
                                                             "seal_sha256": result.sha256}, now)
        log.info("audit day sealed", extra={"date": day, "entries": result.count, "written": result.written})
    return results
