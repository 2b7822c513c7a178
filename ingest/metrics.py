"""Prometheus metrics of the ingest service, kept in a registry per app."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from pathlib import Path

import redis
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector

log = logging.getLogger("recvault.ingest")

# Hand-off latencies are sub-millisecond when healthy and up to the publish timeout when not.
_LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5)


class LedgerAge(Collector):
    """`recvault_ledger_oldest_row_age_seconds`: how long the oldest accepted-callback row has waited in
    Redis for the flush to S3, read from the stream (XRANGE count=1) at each scrape.

    Ingest exports it, not the worker: ingest is the process that adds the rows, so it is scraped
    whenever rows can pile up, and it reads the stream itself, so the age keeps growing while the
    flush, beat or every worker is down, where a value the flush set would freeze or vanish. Each
    scrape costs one small read (run off the event loop, see views.metrics). While the stream
    cannot be read the family has no sample: the age is unknown, and RecvaultBrokerDown says why.
    """

    NAME = "recvault_ledger_oldest_row_age_seconds"

    def __init__(self) -> None:
        self.read: Callable[[], float] | None = None  # set once the app has its broker client

    def collect(self) -> Iterator[GaugeMetricFamily]:
        family = GaugeMetricFamily(self.NAME, "Age of the oldest accepted-callback row not yet flushed to S3 "
                                   "(0 when none waits)")
        if self.read is not None:
            try:
                family.add_metric([], self.read())
            except (redis.RedisError, OSError) as error:
                log.debug("ledger age not read", extra={"error": repr(error)})
        yield family


class IngestMetrics:
    """Counters and gauges `/metrics` exposes."""

    def __init__(self, registry: CollectorRegistry | None = None, *, multiprocess_dir: Path | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        # What /metrics shows: this process's registry, or with several server processes the
        # sum over all of them, read from the shared directory at each scrape.
        self.exposed = r
        if multiprocess_dir is not None:
            self.exposed = CollectorRegistry()
            MultiProcessCollector(self.exposed, path=str(multiprocess_dir))
        self.accepted = Counter(
            "recvault_callbacks_accepted", "Callbacks answered 2xx, by outcome", ["outcome"], registry=r
        )
        self.rejected = Counter(
            "recvault_callbacks_rejected", "Callbacks refused, by reason", ["reason"], registry=r
        )
        self.handoff_seconds = Histogram(
            "recvault_enqueue_seconds",
            "Time to put one batch on the queue or in the spool",
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.request_seconds = Histogram(
            "recvault_callback_seconds",
            "Time from request to answer for accepted callbacks",
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        # Modes for several processes: the spool file is shared (max), Redis is up only if
        # every process can reach it (min).
        self.spool_depth = Gauge("recvault_spool_depth", "Callbacks waiting in the local spool",
                                 registry=r, multiprocess_mode="livemax")
        self.broker_up = Gauge("recvault_broker_up", "1 when Redis accepted the last write",
                               registry=r, multiprocess_mode="livemin")
        # Held copies live in the shared spool file too (max).
        self.unreplicated = Gauge(
            "recvault_broker_unreplicated_callbacks",
            "Callbacks on the broker's master that no replica has acknowledged, their copies held in the spool",
            registry=r, multiprocess_mode="livemax",
        )
        self.drained = Counter(
            "recvault_spool_drained", "Spooled callbacks moved to the queue", registry=r
        )
        # Read from Redis at each scrape, so it is no per-process value: registered where /metrics reads.
        self.ledger_age = LedgerAge()
        self.exposed.register(self.ledger_age)
        self.broker_up.set(1)
