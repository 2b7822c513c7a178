"""Reading the archive's documents back, bounded: partitions, listings and summarised documents.

Every reader of the operations routes goes through one ArchiveView per process. It lists
through the `ObjectStore` interface, keeps listings for a few seconds, keeps each document
it has read summarised (an `Entry`) until the listing shows it changed, and reads at most
a request's `Budget` of documents it does not hold yet — a status page over a busy archive
costs a bounded number of requests, and fills in over a few refreshes.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import Any

from recvault import layout
from recvault.ops.cache import Expiring, Lru
from recvault.ops.entries import Entry
from recvault.storage.base import ListedObject, ObjectStore

log = logging.getLogger("recvault.ops")

# Seconds a listing of a recent day (today, yesterday) or the list of days is reused.
CACHE_SECONDS = 5.0
# Seconds a listing of an older day is reused: only a late price or a late callback changes it.
PAST_DAY_SECONDS = 300.0
# Documents one request may read that are not summarised yet; the rest wait for the next one.
READS_PER_REQUEST = 500
# Documents kept summarised in memory (a few hundred bytes each).
ENTRY_CACHE = 50_000
# Parallel S3 requests of one call: boto3's pool holds 10 connections.
PARALLEL = 8


# One listed object and its entry (None: not a document recvault can read).
Read = tuple[ListedObject, Entry | None]


class Budget:
    """How many more uncached documents this request may read."""

    def __init__(self, reads: int = READS_PER_REQUEST) -> None:
        self.left = reads

    def take(self, wanted: int) -> int:
        granted = min(wanted, self.left)
        self.left -= granted
        return granted


class ArchiveView:
    """The bucket's partitions and documents, read through the ObjectStore with caches and a budget."""

    def __init__(self, store: ObjectStore, prefix: str = "", *,
                 clock: Callable[[], datetime] = lambda: datetime.now(UTC)) -> None:
        self.store = store
        self.prefix = prefix
        self.clock = clock
        self.pool = ThreadPoolExecutor(PARALLEL, thread_name_prefix="recvault-ops")
        self._days: Expiring[str, list[str]] = Expiring(CACHE_SECONDS)
        self._recent_listings: Expiring[str, list[ListedObject]] = Expiring(CACHE_SECONDS)
        self._past_listings: Expiring[str, list[ListedObject]] = Expiring(PAST_DAY_SECONDS)
        self._entries: Lru[str, tuple[str, Entry]] = Lru(ENTRY_CACHE)
        # RecordingSid → the day its documents are under, learnt from every document read.
        self.known_days: Lru[str, str] = Lru(ENTRY_CACHE)

    def close(self) -> None:
        self.pool.shutdown(wait=False, cancel_futures=True)

    def today(self) -> str:
        return self.clock().astimezone(UTC).strftime("%Y-%m-%d")

    # --- partitions and listings ------------------------------------------------------
    def days(self, folder: str) -> list[str]:
        """Days with a partition under `folder` (layout.METADATA, EVENTS, AUDIT), newest first."""
        root = self.prefix + folder

        def compute() -> list[str]:
            found = (layout.PARTITION.fullmatch(sub.removeprefix(root)) for sub in self.store.list_folders(root))
            return sorted((match[1] for match in found if match), reverse=True)

        return self._days.get(folder, compute)

    def listing(self, folder: str, day: str) -> list[ListedObject]:
        """The objects of one day's partition, in key order."""
        prefix = layout.partition_prefix(self.prefix, folder, day)
        yesterday = (self.clock().astimezone(UTC) - timedelta(days=1)).strftime("%Y-%m-%d")
        cache = self._recent_listings if day >= yesterday else self._past_listings
        return cache.get(prefix, lambda: list(self.store.list_objects(prefix)))

    # --- documents --------------------------------------------------------------------
    def entries(self, listed: list[ListedObject], budget: Budget) -> tuple[list[Read], bool]:
        """(object, entry) for the longest start of `listed` the budget covers, and whether that is all of it.

        An entry is None for an object that is not a document recvault can read.
        """
        held: dict[str, Entry] = {}
        missing: list[ListedObject] = []
        covered = len(listed)
        for index, item in enumerate(listed):
            hit = self._entries.get(item.key)
            if hit is not None and hit[0] == item.etag:
                held[item.key] = hit[1]
                continue
            if not budget.take(1):
                covered = index
                break
            missing.append(item)
        for item, entry in zip(missing, self.pool.map(self._read_entry, missing), strict=True):
            if entry is not None:
                self._entries.put(item.key, (item.etag, entry))
                self.known_days.put(entry.sid, entry.date)
                held[item.key] = entry
        return [(item, held.get(item.key)) for item in listed[:covered]], covered == len(listed)

    def document(self, key: str) -> dict[str, Any] | None:
        """One JSON document, or None when it is not a JSON object (S3 failures propagate)."""
        try:
            value = json.loads(self.store.get_bytes(key))
        except ValueError:
            return None
        return value if isinstance(value, dict) else None

    def _read_entry(self, item: ListedObject) -> Entry | None:
        metadata = layout.parse_metadata_key(self.prefix, item.key)
        event = None if metadata else layout.parse_event_key(self.prefix, item.key)
        if metadata is None and event is None:
            return None
        try:  # an S3 failure propagates: a listing must not skip a document it could not read
            document = json.loads(self.store.get_bytes(item.key))
        except ValueError:
            log.warning("document is not JSON", extra={"key": item.key})
            return None
        if not isinstance(document, dict):
            return None
        day = (metadata or event or ("", ""))[0]
        return Entry.from_document(item.key, day, document, event=event is not None)
