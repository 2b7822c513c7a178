"""Prometheus metrics of the ingest service, kept in a registry per app."""

from __future__ import annotations

from pathlib import Path

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.multiprocess import MultiProcessCollector

# Hand-off latencies are sub-millisecond when healthy and up to the publish timeout when not.
_LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5)


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
        self.broker_up.set(1)
