"""The operations side of ingest: what its routes read through, built when the app starts."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TypeVar

from celery import Celery
from prometheus_client import CollectorRegistry

from recvault.ingest.ops.auth import Guard
from recvault.ops.broker_view import BrokerView
from recvault.ops.recordings import RecordingsReader
from recvault.ops.status import StatusReader
from recvault.ops.view import ArchiveView
from recvault.queue.broker import broker_client
from recvault.queue.kombu_redis import RedisKeys
from recvault.settings import Settings
from recvault.storage.s3 import S3Store

T = TypeVar("T")
# Threads that run operations reads (blocking S3 and Redis calls) off the event loop; callbacks
# never wait for them.
THREADS = 4


@dataclass
class Operations:
    """The read models the operations routes use, the threads they run on, and who may use them."""

    view: ArchiveView
    broker: BrokerView
    recordings: RecordingsReader
    status: StatusReader
    executor: ThreadPoolExecutor
    guard: Guard

    @classmethod
    def open(cls, settings: Settings, celery: Celery, registry: CollectorRegistry | None = None) -> Operations:
        """Nothing connects here: S3 and Redis are first reached by a request (ingest's callbacks never
        depend on them). The guard's counters go in `registry` (the app's metrics)."""
        options = celery.conf.broker_transport_options or {}
        client = broker_client(settings.broker_url, options,
                               socket_timeout=settings.redis_socket_timeout_seconds,
                               socket_connect_timeout=settings.redis_connect_timeout_seconds)
        broker = BrokerView(client, RedisKeys.for_queue(settings.queue, options))
        view = ArchiveView(S3Store.from_settings(settings), settings.s3_prefix)
        return cls(view, broker, RecordingsReader(view), StatusReader(view, broker),
                   ThreadPoolExecutor(THREADS, thread_name_prefix="recvault-ops-request"), Guard(settings, registry))

    async def run(self, function: Callable[..., T], *args: object) -> T:
        """Run a blocking read on the operations threads."""
        return await asyncio.get_running_loop().run_in_executor(self.executor, function, *args)

    def close(self) -> None:
        self.executor.shutdown(wait=False, cancel_futures=True)
        self.view.close()
        self.broker.close()
