"""The price sweep: one more refresh for every archived recording whose price Twilio had not set in time.

A recording's own refresh chain asks Twilio for its price `RECVAULT_PRICE_REFRESH_ATTEMPTS`
times and then stops, price or not. The daily sweep reads the metadata documents of the last
few days and queues a final refresh for each one still without a price.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from recvault import layout
from recvault.storage.base import ObjectStore
from recvault.workers.price_refresh import InvalidRefresh, RefreshTarget

log = logging.getLogger("recvault.worker")

# Documents read at once: each read is one small GET, mostly waiting on the store.
READERS = 8


@dataclass
class SweepReport:
    """What one sweep looked at and queued."""

    documents: int = 0
    unpriced: int = 0
    queued: int = 0


def documents(store: ObjectStore, prefix: str, dates: Iterable[str]) -> Iterator[tuple[str, dict]]:
    """(day, metadata document) for every recording archived on those days."""
    def read(key: str) -> dict:
        return json.loads(store.get_bytes(key))

    with ThreadPoolExecutor(READERS, thread_name_prefix="recvault-sweep") as pool:
        for day in dates:
            keys = list(store.list_keys(layout.partition_prefix(prefix, layout.METADATA, day)))
            for document in pool.map(read, keys):
                yield day, document


def sweep_prices(store: ObjectStore, prefix: str, dates: Iterable[str],
                 publish: Callable[[RefreshTarget], bool]) -> SweepReport:
    """Queue a final price refresh (through `publish`) for each unpriced recording of `dates`."""
    report = SweepReport()
    for day, document in documents(store, prefix, dates):
        report.documents += 1
        # A recording deleted at Twilio has no price left to fetch.
        if document.get("price") is not None or document.get("twilio_deleted_at"):
            continue
        try:
            target = RefreshTarget.from_payload({"account_sid": document.get("account_sid"),
                                                 "recording_sid": document.get("sid"), "date": day})
        except InvalidRefresh as error:  # `recvault audit` reports such a document; the sweep goes on
            log.warning("price sweep skipped a document", extra={"error": str(error)})
            continue
        report.unpriced += 1
        report.queued += bool(publish(target))
    return report
