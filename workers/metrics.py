"""Prometheus metrics of a worker host, summed over its pool processes (prometheus-client multiprocess mode).

`recvault worker` points PROMETHEUS_MULTIPROC_DIR at a directory of its own before anything
imports prometheus-client, so each prefork child writes its values to files there; the
main process serves the sum at `/metrics` (RECVAULT_WORKER_METRICS_PORT, default 9808).
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server
from prometheus_client.multiprocess import MultiProcessCollector, mark_process_dead

from recvault.errors import ConfigurationError

log = logging.getLogger("recvault.worker")

# Task run times: a short recording takes well under a second, a day-long one up to an hour.
TASK_BUCKETS = (0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 900, 3600)
# Callback received → archived: seconds when all is well, up to hours through retries.
ARCHIVE_BUCKETS = (0.5, 1, 2, 5, 10, 30, 60, 120, 300, 900, 1800, 3600, 4 * 3600, 24 * 3600)
# Files prometheus-client keeps for gauges that count live processes only: <kind>_<pid>.db.
_LIVE_FILE = re.compile(r"gauge_live\w*_(\d+)\.db")


class WorkerMetrics:
    """What a worker counts; one instance per worker host, inherited by its pool children."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        r = registry or CollectorRegistry()
        self.registry = r
        self.archived = Counter("recvault_archived_recordings", "Recordings archived (media and document written)",
                                registry=r)
        self.archived_bytes = Counter("recvault_archived_bytes", "Media bytes archived", registry=r)
        self.tasks = Counter("recvault_tasks", "Tasks finished, by task and outcome", ["task", "outcome"], registry=r)
        self.task_seconds = Histogram("recvault_task_seconds", "Time one task ran, by task", ["task"],
                                      buckets=TASK_BUCKETS, registry=r)
        self.retries = Counter("recvault_task_retries", "Retries scheduled, by error class", ["error"], registry=r)
        self.dead_letters = Counter("recvault_dead_letters", "Events dead-lettered, by error class", ["error"],
                                    registry=r)
        self.twilio_errors = Counter("recvault_twilio_errors",
                                     "Twilio answers of 400 or more, by HTTP status (0: no answer)", ["status"],
                                     registry=r)
        self.s3_errors = Counter("recvault_s3_errors", "Failed S3 calls, by operation and HTTP status (0: no answer)",
                                 ["operation", "status"], registry=r)
        self.in_flight = Gauge("recvault_archives_in_flight", "Archive tasks running now", registry=r,
                               multiprocess_mode="livesum")
        self.callback_to_archive = Histogram("recvault_callback_to_archive_seconds",
                                             "From the callback reaching ingest to the recording archived",
                                             buckets=ARCHIVE_BUCKETS, registry=r)

    def twilio_error(self, status: int) -> None:
        self.twilio_errors.labels(str(status)).inc()

    def s3_error(self, operation: str, status: int) -> None:
        self.s3_errors.labels(operation, str(status)).inc()


class _Summed:
    """The metrics of every pool process, read from the shared directory at each scrape.

    Before reading, it forgets the live-only gauges of processes that are gone (a pool
    child killed by the OS never says so itself), so in-flight counts only the living.
    """

    def __init__(self, directory: Path) -> None:
        self._directory = directory
        self._collector = MultiProcessCollector(None, path=str(directory))

    def collect(self) -> Iterable[Any]:
        for file in self._directory.glob("gauge_live*.db"):
            found = _LIVE_FILE.fullmatch(file.name)
            if found and not _alive(int(found[1])):
                mark_process_dead(int(found[1]), str(self._directory))
        return self._collector.collect()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def serve_metrics(directory: Path, host: str, port: int) -> None:
    """Serve the summed metrics at http://host:port/metrics from a daemon thread; fail at start if it cannot."""
    registry = CollectorRegistry()
    registry.register(_Summed(directory))
    try:
        start_http_server(port, addr=host, registry=registry)
    except OSError as error:
        raise ConfigurationError(
            f"RECVAULT_WORKER_METRICS_PORT: cannot listen on {host}:{port} for /metrics ({error.strerror}); "
            "choose another port, or 0 to turn the listener off"
        ) from None
    log.info("worker metrics listening", extra={"address": f"http://{host}:{port}/metrics"})
