"""Delivery policy around a task body: follow-ups published safely, failures never acknowledged unrecorded.

* Follow-up messages (a retry after backoff, a later price refresh) go through recvault's
  queue writer, like callbacks from ingest: recorded as pending the moment they are queued,
  so a worker killed while taking one cannot lose it, and published once per attempt
  (their dedup key names the attempt), so a redelivered task cannot publish them twice.
* A message delivered again and again without finishing — one that kills its worker — is
  dead-lettered after MAX_DELIVERIES instead of cycling forever.
* Whatever escapes the body is dead-lettered with its reason; only when even the
  dead-letter store cannot be written is the message handed back to the queue.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import redis
from celery import Celery, Task
from celery.exceptions import Reject

from recvault.queue.writer import QueueWriter, build_message
from recvault.workers.context import ProcessContext, WorkerContext

log = logging.getLogger("recvault.worker")
# First retry waits about this long; each later one doubles, up to retry_backoff_max.
BACKOFF_BASE_SECONDS = 2.0
# Deliveries of one attempt that may end without an answer (the pool process died, the
# worker was killed) before it counts as a poison message.
MAX_DELIVERIES = 5
# A delivery count outlives any redelivery delay (visibility timeout, restarts) by far.
DELIVERIES_TTL_SECONDS = 24 * 3600


class PoisonMessage(Exception):
    """Delivered MAX_DELIVERIES times without finishing: it likely kills the worker that runs it."""


def backoff(retries: int, *, cap: float, retry_after: float | None = None) -> float:
    """Jittered exponential backoff, never sooner than Twilio's Retry-After."""
    delay = min(cap, BACKOFF_BASE_SECONDS * 2**retries) * random.uniform(0.5, 1.0)
    return max(delay, retry_after or 0.0)


def publish_follow_up(app: Celery, publisher: QueueWriter, queue: str, *, task: str, payload: dict,
                      dedup_key: str, task_id: str | None = None, delay: float = 0, retries: int = 0) -> None:
    """Queue a follow-up once (by `dedup_key`); if Redis refuses, hand the current message back."""
    eta = datetime.now(UTC) + timedelta(seconds=delay) if delay else None
    message = build_message(app, queue, dedup_key, payload, task=task, task_id=task_id, eta=eta, retries=retries)
    try:
        publisher.publish(message)
    except redis.RedisError as error:
        # Acknowledging now would drop the event; requeued, it runs again and publishes again.
        raise Reject(f"could not publish a follow-up message: {error!r}", requeue=True) from None


def count_delivery(publisher: QueueWriter, task: Task) -> int:
    """How many times this attempt of this task has now been delivered (this one included)."""
    key = publisher.keys.recvault(f"deliveries:{task.request.id}:{task.request.retries}")
    pipe = publisher.client.pipeline(transaction=False)
    pipe.incr(key)
    pipe.expire(key, DELIVERIES_TTL_SECONDS)
    return int(pipe.execute()[0])


def guarded(task: Task, process: ProcessContext, letter_id: str, payload: object,
            body: Callable[[WorkerContext], str]) -> str:
    """Run a task body so that no failure is acknowledged without a durable record.

    Celery acknowledges a task that raises (acks_late still acks failures), and on Redis a
    rejection without requeue drops the message too. So every error that escapes the body —
    a context that could not be built, a bug in recvault's own handling, a poison message —
    is dead-lettered here with its reason.
    """
    try:
        context = process.get()
        try:
            deliveries = count_delivery(context.publisher, task)
        except redis.RedisError as error:
            # The count is a safety net: a Redis blip (a connection reset after a restart) must
            # not turn into a dead letter. This delivery runs uncounted.
            log.warning("delivery not counted", extra={"task_id": task.request.id, "error": repr(error)})
            deliveries = 0
        if deliveries > MAX_DELIVERIES:
            raise PoisonMessage(f"delivered {deliveries} times without finishing; "
                                "it may kill the worker that runs it")
        return body(context)
    except Reject:
        raise
    except Exception as error:
        log.error("task failed outside its own handling; dead-lettering",
                  extra={"task_id": task.request.id, "error": str(error), "kind": type(error).__name__})
        dead_letter(process, task, letter_id, payload, error)
        return "dead-lettered"


def dead_letter(process: ProcessContext, task: Task, letter_id: str, payload: object, error: Exception) -> None:
    try:
        process.dead_letters.add(letter_id, task.name, payload, reason=str(error) or type(error).__name__,
                                 error=type(error).__name__, attempts=task.request.retries + 1)
    except redis.RedisError:
        # Without a durable record the event must not be acknowledged: hand it back.
        raise Reject("dead-letter store unreachable", requeue=True) from None
    process.metrics.dead_letters.labels(type(error).__name__).inc()
