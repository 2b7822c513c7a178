"""What a worker process needs, built when the process starts — never on a first task.

The worker's main process builds the context once before it consumes anything, so a bad
setting or policy rule stops it at start with a line naming it. In the threads pool (the
default) every thread shares that context: boto3 clients, the requests session and redis-py
are thread-safe, and their connection pools are sized to the threads. Each prefork pool
child builds its own again right after the fork (boto3 and redis clients are not shared
across processes). If that fails in a child, the error is kept and every task that child runs
is dead-lettered with it — recorded durably, replayable once the configuration is
fixed — instead of failing and being acknowledged.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from functools import partial

from celery import Celery

from recvault.compliance.policy import Policy
from recvault.errors import ConfigurationError
from recvault.queue.writer import QueueWriter
from recvault.settings import Settings
from recvault.storage.base import ObjectStore
from recvault.storage.s3 import S3Store
from recvault.twilio.api import TwilioApi
from recvault.workers.archive import ArchiveOptions
from recvault.workers.dead_letters import DeadLetters
from recvault.workers.metrics import WorkerMetrics

log = logging.getLogger("recvault.worker")


@dataclass
class WorkerContext:
    """Clients and choices shared by every task a worker process runs."""

    settings: Settings
    twilio: TwilioApi
    store: ObjectStore
    policy: Policy
    options: ArchiveOptions
    # Follow-up messages (retries, price refreshes) go through recvault's own queue writer.
    publisher: QueueWriter

    @classmethod
    def build(cls, settings: Settings, app: Celery, metrics: WorkerMetrics | None = None) -> WorkerContext:
        """Everything a task needs; ConfigurationError names the setting or policy rule."""
        if settings.twilio_account_sid:
            settings.download_credentials(settings.twilio_account_sid)  # fails now, not per task
        store = S3Store.from_settings(settings)
        if metrics is not None:
            store.observe_errors(metrics.s3_error)
        return cls(
            settings=settings,
            twilio=TwilioApi.from_settings(settings, on_error=metrics.twilio_error if metrics is not None else None),
            store=store,
            policy=Policy.from_settings(settings),
            options=ArchiveOptions(
                prefix=settings.s3_prefix,
                media_format=settings.media_format,
                delete_after_archive=settings.delete_after_archive,
                not_found_grace=timedelta(seconds=settings.not_found_grace_seconds),
            ),
            publisher=queue_writer(settings, app),
        )


def queue_writer(settings: Settings, app: Celery) -> QueueWriter:
    """A writer on the broker `app` uses, with the worker's Redis timeouts."""
    return QueueWriter.for_app(app, settings.queue, settings.dedup_ttl_seconds,
                               timeout=settings.redis_socket_timeout_seconds,
                               connect_timeout=settings.redis_connect_timeout_seconds)


def dead_letter_store(settings: Settings, store: ObjectStore | None = None) -> DeadLetters:
    """Dead letters in Redis and, under the policy's default retention, in the archive bucket."""
    try:
        retention = Policy.from_settings(settings).default_retention()
    except ConfigurationError:
        retention = None  # the policy is what failed: keep the letters anyway, unlocked
    return DeadLetters.connect(settings.broker_url, settings.broker_transport_options,
                               timeout=settings.redis_socket_timeout_seconds,
                               store=store or S3Store.from_settings(settings),
                               prefix=settings.s3_prefix, retention=retention)


class ProcessContext:
    """The worker context of this process, and the dead-letter store that outlives its failure."""

    def __init__(self, settings: Settings, app: Celery,
                 build: Callable[[Settings, Celery], WorkerContext] | None = None,
                 metrics: WorkerMetrics | None = None) -> None:
        self.settings = settings
        self.app = app
        # Made before the pool forks: every child counts into the same metrics (multiprocess files).
        self.metrics = metrics or WorkerMetrics()
        self._build = build or partial(WorkerContext.build, metrics=self.metrics)
        self._context: WorkerContext | None = None
        self._error: Exception | None = None
        self._dead_letters: DeadLetters | None = None

    @property
    def dead_letters(self) -> DeadLetters:
        """The dead-letter store: the context's S3 client when there is a context (one client
        per process: each costs ~13 MB), a client of its own when the context failed."""
        if self._dead_letters is None:
            store = self._context.store if self._context is not None else None
            self._dead_letters = dead_letter_store(self.settings, store)
        return self._dead_letters

    def build(self) -> WorkerContext:
        """Build the context now; raises what the build raised (ConfigurationError and the like)."""
        self._context, self._error, self._dead_letters = None, None, None
        self._context = self._build(self.settings, self.app)
        return self._context

    def build_after_fork(self) -> None:
        """In a new pool child: fresh clients; a failure is kept for the tasks to report."""
        try:
            self.build()
        except Exception as error:
            self._error = error
            log.error("worker context failed to build; tasks will be dead-lettered",
                      extra={"error": str(error), "kind": type(error).__name__})

    def writer(self) -> QueueWriter:
        """A queue writer of this process's own (the heartbeat's, in the worker's main process)."""
        return queue_writer(self.settings, self.app)

    def get(self) -> WorkerContext:
        """The built context; ConfigurationError saying why there is none."""
        if self._context is not None:
            return self._context
        if self._error is not None:
            raise ConfigurationError(f"worker context unavailable: {self._error}") from self._error
        raise ConfigurationError("worker context was never built (ProcessContext.build not called)")
