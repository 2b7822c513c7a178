"""Durable hand-off of accepted callbacks: Redis when it answers, the local spool when not.

Handlers await `submit()`; one thread takes whatever has queued up meanwhile and writes it
in a single Redis round trip (group commit), so publishing never blocks the event loop and
throughput grows with load. A callback is answered only once its message is on the Celery
queue or fsync'd in the spool. While the spool holds anything, new events join it too, so
the queue receives events in arrival order; the same thread drains it when Redis is back.

When the spool itself fails (a full disk, an I/O error), events go straight to Redis if it
answers — keeping them beats keeping their order — and are refused (503) only while
neither can take them. The thread survives any error and keeps retrying, so ingest
recovers by itself once the disk has room or Redis is back.

With replicas to wait for (Sentinel, RECVAULT_BROKER_WAIT_REPLICAS), a batch the master took
but no replica acknowledged in time stays on the queue — workers archive it — and is also
*held* in the spool, fsync'd, before it is answered: the master and the local disk hold it.
So losing the replica (or the master, and with it the only replica left) never stops
archiving. Held copies leave the spool once a later WAIT on the same replication history
covers them. When the master's history changes before that (a failover, a restart), held
copies become waiting rows again and are published again, oldest first and before newer
callbacks, through the dedup script: what the new master lacks is queued, the rest is not.
While copies are held their dedup keys are renewed every half window, so a copy published
again always meets its key, however long it was held.
"""

from __future__ import annotations

import asyncio
import enum
import logging
import queue
import sqlite3
import threading
import time

import redis

from recvault.ingest.metrics import IngestMetrics
from recvault.ingest.spool import Spool
from recvault.queue.writer import Outgoing, QueueWriter, Replication, Written

log = logging.getLogger("recvault.ingest")


class Outcome(enum.Enum):
    """What became of one submitted event."""

    QUEUED = "queued"
    DUPLICATE = "duplicate"
    SPOOLED = "spooled"


# Seconds close() waits for the events submitted before it to reach Redis or the spool.
CLOSE_SECONDS = 10.0
# Held copies whose dedup keys one look renews at most (each SQL and Redis step a tenth of it).
REFRESH_PER_LOOK = 10_000
# One submitted event and the future its handler awaits.
Pending = tuple[Outgoing, asyncio.Future[Outcome]]


class Handoff:
    """Moves events from the event loop to Redis on one thread, spooling when Redis fails."""

    def __init__(
        self,
        writer: QueueWriter,
        spool: Spool,
        metrics: IngestMetrics,
        *,
        batch_max: int = 500,
        retry_interval: float = 1.0,
    ) -> None:
        self._writer = writer
        self._spool = spool
        self._metrics = metrics
        self._batch_max = batch_max
        self._retry_interval = retry_interval
        self._inbox: queue.SimpleQueue[Pending | None] = queue.SimpleQueue()
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name="recvault-handoff", daemon=True)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._next_drain = 0.0
        # When to ask the master next whether a replica holds the held copies.
        self._next_look = 0.0
        self.broker_up = True
        # Whether the last batch (or look) was acknowledged by enough replicas; always with none required.
        self.replicated = True
        # Why the spool cannot take writes, while it cannot (None: it can).
        self.spool_error: str | None = None
        self.spool_depth = spool.depth()
        # Copies held in the spool of callbacks on the master that no replica has acknowledged.
        self.unreplicated = spool.held()
        metrics.spool_depth.set(self.spool_depth)
        metrics.unreplicated.set(self.unreplicated)

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._thread.start()

    def close(self, timeout: float = CLOSE_SECONDS) -> None:
        """Deliver everything submitted so far (to Redis or the spool), then stop the thread."""
        self._inbox.put(None)  # behind every event already submitted
        self._thread.join(timeout)
        self._stopping.set()
        self._thread.join(timeout)
        self._writer.close()
        self._spool.close()

    async def submit(self, item: Outgoing) -> Outcome:
        """Hand one event off; returns once it is durably queued, deduplicated or spooled."""
        assert self._loop is not None, "Handoff.start() was not called"
        future: asyncio.Future[Outcome] = self._loop.create_future()
        self._inbox.put((item, future))
        return await future

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()

    @property
    def degraded(self) -> bool:
        return (not self.broker_up or self.spool_depth > 0 or self.spool_error is not None
                or self.unreplicated > 0 or not self.replicated)

    @property
    def accepting(self) -> bool:
        """Whether a callback arriving now can be kept durably (replicated on Redis, or the spool)."""
        return (self.broker_up and self.replicated) or self.spool_error is None

    # --- the hand-off thread --------------------------------------------------
    def _run(self) -> None:
        closing = False
        while not closing and not self._stopping.is_set():
            batch: list[Pending] = []
            try:
                batch, closing = self._take_batch()
                if self.unreplicated and self.broker_up and not self.spool_depth and batch:
                    # Before a batch goes straight to the master: does it still hold the copies?
                    self._check_history()
                if self.spool_depth and time.monotonic() >= self._next_drain and not closing:
                    self._drain()
                if batch:
                    self._deliver(batch)
                if self.unreplicated and self.broker_up and time.monotonic() >= self._next_look:
                    self._look_at_replication()
            except Exception as error:  # never let the thread die: later callbacks would hang
                log.error("hand-off step failed; retrying", extra={"error": repr(error)})
                if isinstance(error, (sqlite3.Error, OSError)):
                    self._spool_failed(error)
                self._resolve(batch, error=error)
                self._stopping.wait(self._retry_interval)

    def _take_batch(self) -> tuple[list[Pending], bool]:
        """What has been submitted meanwhile, and whether close() asked to stop after it."""
        try:
            first = self._inbox.get(timeout=self._retry_interval)
        except queue.Empty:
            self._refresh_depth()
            return [], False
        if first is None:
            return [], True
        batch = [first]
        while len(batch) < self._batch_max:
            try:
                entry = self._inbox.get_nowait()
            except queue.Empty:
                break
            if entry is None:
                return batch, True
            batch.append(entry)
        return batch, False

    def _deliver(self, batch: list[Pending]) -> None:
        items = [item for item, _ in batch]
        started = time.perf_counter()
        if self.broker_up and not self.spool_depth:
            try:
                outcomes = self._to_queue(items)
            except redis.RedisError as error:
                self._broker_down(error)
                outcomes = self._to_spool_or_queue(items)
        else:
            outcomes = self._to_spool_or_queue(items)
        self._metrics.handoff_seconds.observe(time.perf_counter() - started)
        self._resolve(batch, outcomes=outcomes)

    def _to_queue(self, items: list[Outgoing]) -> list[Outcome]:
        """The master; unacknowledged by replicas, a copy held in the spool too (raises if it cannot)."""
        sent_at = time.time()  # no later than the master set the batch's new dedup keys
        written = self._writer.write(items)
        if written.acknowledged:
            self._acknowledged(written)
        else:
            self._hold(items, written, sent_at)
        return [Outcome.QUEUED if ok else Outcome.DUPLICATE for ok in written.enqueued]

    def _hold(self, items: list[Outgoing], written: Written, sent_at: float) -> None:
        assert written.replication is not None  # only batches that had replicas to wait for
        self._not_acknowledged(written.replication)
        self.unreplicated += self._spool.hold(items, written.replication.history, written.replication.offset,
                                              written.enqueued, at=sent_at)
        self._metrics.unreplicated.set(self.unreplicated)
        self._spool_ok()

    def _to_spool_or_queue(self, items: list[Outgoing]) -> list[Outcome]:
        """The spool; when it fails, Redis after all; raises when neither keeps the events."""
        try:
            self._spool.append(items)
        except (sqlite3.Error, OSError) as spool_error:
            self._spool_failed(spool_error)
            try:
                written = self._writer.write(items)
            except redis.RedisError as error:
                self._broker_down(error)
                log.error("neither the spool nor Redis can keep callbacks",
                          extra={"error": repr(spool_error), "count": len(items)})
                raise spool_error from error
            self._broker_back()
            if not written.acknowledged:
                assert written.replication is not None
                self._not_acknowledged(written.replication)
                # On the master alone: a failover could lose them, so they are not accepted.
                log.error("neither a replica nor the spool can keep callbacks",
                          extra={"error": repr(spool_error), "count": len(items)})
                raise spool_error
            self._acknowledged(written)
            return [Outcome.QUEUED if ok else Outcome.DUPLICATE for ok in written.enqueued]
        self._spool_ok()
        self.spool_depth = self._spool.depth()
        self._metrics.spool_depth.set(self.spool_depth)
        return [Outcome.SPOOLED] * len(items)

    def _spool_failed(self, error: Exception) -> None:
        if self.spool_error is None:
            log.error("spool cannot take writes", extra={"error": repr(error)})
        self.spool_error = str(error) or type(error).__name__

    def _spool_ok(self) -> None:
        if self.spool_error is not None:
            log.info("spool takes writes again")
        self.spool_error = None

    def _drain(self) -> None:
        """Move spooled messages to Redis, oldest first, a bounded amount per call."""
        # Whether the master answers, and where it stands: copies it lacks are older than what
        # waits, so they go first; and with no replica online no batch waits for one in vain.
        if (not self.broker_up or self.unreplicated) and not self._check_history():
            self._next_drain = time.monotonic() + self._retry_interval
            return
        for _ in range(20):
            rows = self._spool.oldest(self._batch_max)
            if not rows:
                break
            sent_at = time.time()
            try:
                written = self._writer.write([item for _, item in rows])
            except redis.RedisError as error:
                self._broker_down(error)
                break
            self._broker_back()
            ids = [row_id for row_id, _ in rows]
            # Already on the queue: a failure to forget or mark them here only means they are
            # sent again later, which their dedup keys make harmless.
            try:
                if written.acknowledged:
                    self._spool.remove(ids)
                    self._acknowledged(written)
                else:
                    assert written.replication is not None
                    self._not_acknowledged(written.replication)
                    self._spool.mark_held(ids, written.replication.history, written.replication.offset,
                                          written.enqueued, at=sent_at)
                    self.unreplicated += len(ids)
            except (sqlite3.Error, OSError) as error:
                self._spool_failed(error)
                self._next_drain = time.monotonic() + self._retry_interval
                return
            self._spool_ok()
            self._metrics.drained.inc(sum(written.enqueued))
        self._refresh_depth()

    # --- copies held until a replica acknowledges ---------------------------------
    def _check_history(self) -> bool:
        """Held copies of a history the master no longer continues wait again; False if it does not answer."""
        try:
            replication = self._writer.replication()
        except redis.RedisError as error:
            self._broker_down(error)
            return False
        self._displace(replication)
        return True

    def _look_at_replication(self) -> None:
        """Ask the master whether replicas hold the held copies; release, re-publish or renew them."""
        self._next_look = time.monotonic() + self._retry_interval
        try:
            replication, acknowledged = self._writer.confirm()
            if acknowledged:
                self._acknowledged(Written([], True, replication))
            else:
                self._not_acknowledged(replication)
                self._renew_keys(replication)
        except redis.RedisError as error:
            self._broker_down(error)
            return
        except (sqlite3.Error, OSError) as error:  # tried again at the next look
            self._spool_failed(error)
            return
        self._count_held()

    def _acknowledged(self, written: Written) -> None:
        """Replicas hold the master's history up to this batch: so do they every copy held before it."""
        if not self.replicated:
            log.info("replicas acknowledge the broker's writes again")
        self.replicated = True
        replication = written.replication
        if replication is None or not self.unreplicated:
            return
        self._displace(replication)
        try:
            released = self._spool.release(replication.history, replication.offset)
        except (sqlite3.Error, OSError) as error:  # released at a later acknowledgement
            self._spool_failed(error)
            return
        if released:
            log.info("replicas hold the held callbacks; their copies leave the spool", extra={"count": released})
            self._count_held()

    def _not_acknowledged(self, replication: Replication) -> None:
        if self.replicated:
            log.warning("no replica acknowledged the broker's writes in time; callbacks go to the master and "
                        "their copies stay in the spool until one does",
                        extra={"online_replicas": replication.online, "required": self._writer.replicas})
        self.replicated = False
        self._displace(replication)

    def _displace(self, replication: Replication) -> None:
        """Copies held on a history the master no longer continues wait again, to be published again."""
        if not self.unreplicated:
            return
        try:
            displaced = self._spool.displace(replication.history)
        except (sqlite3.Error, OSError) as error:  # displaced at the next look
            self._spool_failed(error)
            return
        if displaced:
            log.warning("the broker's master changed before a replica held the held callbacks; publishing "
                        "them again", extra={"count": displaced})
            self._next_drain = 0.0  # before any newer callback: they wait behind these now
            self._count_held()

    def _renew_keys(self, replication: Replication) -> None:
        """Renew the dedup keys of copies held on this history once half their window has passed."""
        before = time.time() - self._writer.dedup_ttl / 2
        chunk = REFRESH_PER_LOOK // 10
        for _ in range(10):
            stale = self._spool.stale(replication.history, before, chunk)
            if not stale:
                return
            renewed_at = time.time()  # no later than the master renews them
            self._writer.refresh([key for _, key in stale])
            self._spool.refreshed([row_id for row_id, _ in stale], renewed_at)

    def _count_held(self) -> None:
        self.spool_depth = self._spool.depth()
        self.unreplicated = self._spool.held()
        self._metrics.spool_depth.set(self.spool_depth)
        self._metrics.unreplicated.set(self.unreplicated)

    def _broker_back(self) -> None:
        if not self.broker_up:
            log.info("broker reachable again; draining spool")
            self.broker_up = True
            self._metrics.broker_up.set(1)

    def _broker_down(self, error: Exception) -> None:
        if self.broker_up:
            log.warning("broker unreachable; spooling callbacks", extra={"error": repr(error)})
        self.broker_up = False
        self._metrics.broker_up.set(0)
        self._next_drain = time.monotonic() + self._retry_interval

    def _refresh_depth(self) -> None:
        # Another ingest process sharing the spool file may have added rows.
        self._count_held()
        if not self.spool_depth and not self.broker_up and self._writer.ping():
            self.broker_up = True
            self._metrics.broker_up.set(1)

    def _resolve(self, batch: list[Pending], *, outcomes: list[Outcome] | None = None,
                 error: Exception | None = None) -> None:
        if not batch:
            return
        def settle() -> None:
            for index, (_, future) in enumerate(batch):
                if future.done():
                    continue
                if error is not None:
                    future.set_exception(error)
                else:
                    assert outcomes is not None  # callers pass outcomes or an error
                    future.set_result(outcomes[index])

        assert self._loop is not None
        self._loop.call_soon_threadsafe(settle)
