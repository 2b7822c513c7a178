"""Keeps kombu's unacknowledged-message records true while a worker lives.

kombu's Redis transport hands a message out again when its unacknowledged record is older
than the visibility timeout; it cannot tell a dead worker from a slow one. So each worker's
main process runs a heartbeat thread that

* every `heartbeat` seconds rewrites the score of every message it holds (running, or
  waiting for its ETA) to now: a live worker's messages never look abandoned, however long a
  task runs, while a killed worker's look abandoned one visibility timeout after its last
  beat — and kombu's restore (which recvault runs every few seconds) hands them out again;
* every `heartbeat` seconds looks at pending records (queued by recvault, never recorded by
  a worker, see kombu_redis.PENDING_OFFSET) older than `pending_grace`, and restores the few
  whose message is no longer on the queue: a worker popped it and died before recording it.

The held delivery tags come from kombu's QoS of the worker's task consumer (`_delivered`),
the one piece of kombu state read here, and from Celery's running requests (which outlive a
channel closed by a reconnect); tests/queue/test_heartbeat.py checks it.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable
from typing import Any, cast

import redis
from celery import Celery, bootsteps

from recvault.queue import kombu_redis
from recvault.queue.writer import QueueWriter
from recvault.settings import Settings

log = logging.getLogger("recvault.worker")

# Pending records restored at most per sweep; the oldest first, as they are nearest BRPOP's end.
SWEEP_LIMIT = 100


class UnackedHeartbeat:
    """Heartbeat for held messages and restore for lost pending ones, on one thread."""

    def __init__(self, client: redis.Redis, keys: kombu_redis.RedisKeys, routing_key: str, *,
                 held: Callable[[], list[str]], heartbeat: float, pending_grace: float) -> None:
        self._client = client
        self._keys = keys
        self._routing_key = json.dumps(routing_key)
        self._held = held
        self._heartbeat = heartbeat
        self._pending_grace = pending_grace
        self._restore = client.register_script(kombu_redis.RESTORE_LOST_PENDING)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @classmethod
    def for_writer(cls, writer: QueueWriter, settings: Settings, *, held: Callable[[], list[str]]) -> UnackedHeartbeat:
        """A heartbeat on the writer's broker and keys, beating three times per visibility timeout."""
        return cls(writer.client, writer.keys, settings.queue, held=held,
                   heartbeat=settings.visibility_timeout_seconds / 3, pending_grace=settings.visibility_timeout_seconds)

    def beat(self, now: float | None = None) -> int:
        """Rewrite the score of each held message to now; returns how many were still recorded."""
        tags = self._held()
        if not tags:
            return 0
        stamp = time.time() if now is None else now
        # XX: only records that still exist (one acknowledged meanwhile is not brought back);
        # CH: count the scores actually rewritten.
        return int(self._client.zadd(self._keys.unacked_index, dict.fromkeys(tags, stamp), xx=True, ch=True) or 0)

    def sweep(self, now: float | None = None) -> int:
        """Restore pending records whose message left the queue without being recorded."""
        moment = time.time() if now is None else now
        oldest_kept = kombu_redis.pending_score(moment - self._pending_grace)
        # redis-py types its replies loosely; ZRANGEBYSCORE answers a list of members (bytes).
        candidates = cast(list[bytes], self._client.zrangebyscore(
            self._keys.unacked_index, kombu_redis.PENDING_OFFSET, oldest_kept, start=0, num=SWEEP_LIMIT))
        restored = 0
        for tag in candidates:
            args: list[bytes | str | int] = [tag, repr(oldest_kept), repr(kombu_redis.pending_score(moment)),
                                             self._routing_key, kombu_redis.PENDING_OFFSET]
            if self._restore(keys=[self._keys.queue, self._keys.unacked, self._keys.unacked_index], args=args):
                restored += 1
        if restored:
            log.warning("restored messages a dead worker took off the queue", extra={"count": restored})
        return restored

    # --- the thread -------------------------------------------------------------------
    def start(self) -> None:
        if self._thread is not None and self._thread.is_alive():
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="recvault-heartbeat", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def _run(self) -> None:
        while not self._stop.wait(self._heartbeat):
            try:
                self.beat()
                self.sweep()
            except redis.RedisError as error:  # Redis away: nothing to keep; try again next beat
                log.warning("heartbeat could not reach Redis", extra={"error": repr(error)})


def held_tags(consumer: Any) -> list[str]:
    """Delivery tags of the messages a Celery worker holds unacknowledged.

    Those its task consumer's channel holds (running, prefetched, waiting for their ETA), and
    those of tasks still running that an earlier channel took: when the broker connection drops,
    Celery opens a new channel and the tasks already running go on, and their records must stay
    young until they finish and acknowledge (kombu_transport) or they would be handed out again.
    """
    task_consumer = getattr(consumer, "task_consumer", None)
    qos = getattr(getattr(task_consumer, "channel", None), "qos", None)
    delivered = getattr(qos, "_delivered", None)
    tags = [str(tag) for tag in _copied(delivered)] if delivered is not None else []
    return list(dict.fromkeys([*tags, *running_tags()]))


def running_tags() -> list[str]:
    """Delivery tags of the tasks this worker process runs now (Celery's active requests)."""
    from celery.worker import state

    requests = _copied(state.active_requests)
    tags = (getattr(getattr(request, "message", None), "delivery_tag", None) for request in requests)
    return [str(tag) for tag in tags if tag is not None]


def _copied(items: Any) -> list[Any]:
    """A copy of a collection another thread changes; empty if it keeps changing while copied."""
    for _ in range(3):
        try:
            return list(items)
        except RuntimeError:  # changed size while copied: the consumer is working; copy again
            continue
    return []


def install_heartbeat(app: Celery, make_heartbeat: Callable[[Callable[[], list[str]]], UnackedHeartbeat]) -> None:
    """Run an UnackedHeartbeat in every worker of `app` while its consumer runs."""

    class Heartbeat(bootsteps.StartStopStep):
        """Celery consumer step owning the heartbeat thread."""

        requires = ("celery.worker.consumer.tasks:Tasks",)

        def __init__(self, parent: Any, **kwargs: Any) -> None:
            super().__init__(parent, **kwargs)
            self.heartbeat: UnackedHeartbeat | None = None

        def start(self, parent: Any) -> None:
            if self.heartbeat is None:
                self.heartbeat = make_heartbeat(lambda: held_tags(parent))
            self.heartbeat.start()

        def shutdown(self, parent: Any) -> None:
            if self.heartbeat is not None:
                self.heartbeat.stop()

    app.steps["consumer"].add(Heartbeat)
