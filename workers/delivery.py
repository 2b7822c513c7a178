"""The delivery policy of every recvault task: `deliver` runs a task body, retries, dead-letters, measures.

* A body raises what went wrong. Anything but a `PermanentError` may be a blip: the whole
  task runs again after a jittered backoff, up to RECVAULT_MAX_RETRIES times; a permanent
  failure, or one out of retries, is dead-lettered with its reason (and replayable with
  `recvault dlq replay`).
* Follow-up messages (a retry after backoff, a later price refresh) go through recvault's
  queue writer, like callbacks from ingest: recorded as pending the moment they are queued,
  so a worker killed while taking one cannot lose it, and published once per attempt
  (their dedup key names the attempt), so a redelivered task cannot publish them twice.
* A message delivered again and again without finishing — one that kills its worker — is
  dead-lettered after MAX_DELIVERIES instead of cycling forever.
* No failure is acknowledged unrecorded: only when even the dead-letter store (or the queue,
  for a retry) cannot be written is the message handed back to the queue.
* A message of a version this release does not know (recvault.versions), or one whose work
  would rewrite a document of a newer schema, is handed back to the queue unchanged for a newer
  worker: never run, retried or dead-lettered here (see `hand_back`).
* Every task, scheduled or not, counts into the same `recvault_task_*` metrics.
"""

from __future__ import annotations

import logging
import random
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import redis
from celery import Celery, Task
from celery.exceptions import Reject

from recvault.errors import PermanentError
from recvault.queue.writer import QueueWriter, build_message
from recvault.versions import NewerVersion, check_message
from recvault.workers.context import ProcessContext, WorkerContext

log = logging.getLogger("recvault.worker")
# First retry waits about this long; each later one doubles, up to retry_backoff_max_seconds.
BACKOFF_BASE_SECONDS = 2.0
# Deliveries of one attempt that may end without an answer (the pool process died, the
# worker was killed) before it counts as a poison message.
MAX_DELIVERIES = 5
# A delivery count outlives any redelivery delay (visibility timeout, restarts) by far.
DELIVERIES_TTL_SECONDS = 24 * 3600
# The outcome a scheduled task's success is counted under: its body answers with a report ("2 missing").
REPORTED = "done"
# The outcome of a delivery that handed a message of a newer version back to the queue.
HANDED_BACK_NEWER = "newer-version"
# How long a worker keeps a message it hands back for a newer worker before queueing it again:
# at most one round per message in this time, however many workers of this release are idle.
NEWER_VERSION_PAUSE_SECONDS = 5.0


class PoisonMessage(PermanentError):
    """Delivered MAX_DELIVERIES times without finishing: it likely kills the worker that runs it."""


class Unprocessable(PermanentError):
    """A payload no attempt can process; dead-lettered at once under the error that found it so."""

    def __init__(self, error: Exception) -> None:
        super().__init__(str(error))
        self.error = error


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


def _deliveries_key(publisher: QueueWriter, task: Task) -> str:
    return publisher.keys.recvault(f"deliveries:{task.request.id}:{task.request.retries}")


def count_delivery(publisher: QueueWriter, task: Task) -> int:
    """How many times this attempt of this task has now been delivered (this one included)."""
    key = _deliveries_key(publisher, task)
    pipe = publisher.client.pipeline(transaction=False)
    pipe.incr(key)
    pipe.expire(key, DELIVERIES_TTL_SECONDS)
    return int(pipe.execute()[0])


def forget_deliveries(publisher: QueueWriter, task: Task) -> None:
    """Drop this attempt's delivery count once the attempt has ended; a Redis blip leaves it to expire."""
    try:
        publisher.client.delete(_deliveries_key(publisher, task))
    except redis.RedisError:
        pass


def deliver(task: Task, process: ProcessContext, letter_id: str, payload: Any,
            body: Callable[[WorkerContext], str], *, extra: dict[str, Any] | None = None,
            report: bool = False) -> str:
    """Run `body` under the delivery policy; what it returns, or "retrying" / "dead-lettered".

    `letter_id` names the dead letter (and, with the task id, each retry's dedup key);
    `extra` adds fields (the recording) to the log lines; `report` says the body answers with
    a report, not an outcome, so a success is counted as REPORTED.

    Celery acknowledges a task that raises (acks_late still acks failures), and on Redis a
    rejection without requeue drops the message too: so nothing but Reject escapes from here.
    """
    metrics = process.metrics
    started, outcome = time.perf_counter(), "handed-back"  # unless the delivery ends here
    context: WorkerContext | None = None
    try:
        context = process.get()
        # Before the delivery count: a message handed back again and again is no poison message.
        check_message(payload)
        _check_deliveries(context.publisher, task)
        result = body(context)
        outcome = REPORTED if report else result
        return result
    except Reject:
        raise
    except NewerVersion as newer:
        assert context is not None  # raised only once the context is built
        outcome = hand_back(task, process, context, letter_id, payload, newer,
                            {"task_id": task.request.id, **(extra or {})})
        return outcome
    except Exception as error:
        outcome = _failed(task, process, context, letter_id, payload, error,
                          {"task_id": task.request.id, **(extra or {})})
        return outcome
    finally:
        metrics.task_seconds.labels(task.name).observe(time.perf_counter() - started)
        metrics.tasks.labels(task.name, outcome).inc()
        if context is not None and outcome != "handed-back":
            # The attempt ended here (done, retried as a new attempt, or dead-lettered): its count
            # guards only against deliveries that never end, so it need not wait out its TTL.
            forget_deliveries(context.publisher, task)


def hand_back(task: Task, process: ProcessContext, context: WorkerContext, letter_id: str, payload: Any,
              newer: NewerVersion, extra: dict[str, Any]) -> str:
    """Queue the message again, unchanged, for a worker that knows its version; this one is acknowledged.

    In a rolling upgrade both releases' workers take from one queue. The copy goes through the
    queue writer like every follow-up: recorded as pending at once (a worker killed while taking
    it cannot lose it), with the same task id, retry count and payload, and published once per
    message handed back (its dedup key names the delivery tag, which every copy gets anew). It
    carries no ETA, so a newer worker runs it as soon as it takes it; an ETA would make every
    worker that took it, this release's included, hold it until then. Instead this worker holds
    the message for NEWER_VERSION_PAUSE_SECONDS before queueing the copy, out of every worker's
    reach meanwhile, so while no newer worker runs (ingest or beat upgraded before the workers,
    or the workers rolled back) it goes round at most once per pause instead of in a hot loop.
    """
    time.sleep(NEWER_VERSION_PAUSE_SECONDS)
    properties = getattr(task.request, "properties", None) or {}
    copy = properties.get("delivery_tag") or uuid.uuid4().hex  # a task run outside a worker has none
    publish_follow_up(process.app, context.publisher, process.settings.queue, task=task.name, payload=payload,
                      dedup_key=f"{letter_id}:{task.request.id}:newer:{copy}", task_id=task.request.id,
                      retries=task.request.retries)
    fields = {"task": task.name, "what": newer.what, "version": newer.version, "known": newer.known}
    if newer.key:
        fields["key"] = newer.key
    log.warning("newer version handed back", extra={**extra, **fields})
    return HANDED_BACK_NEWER


def _check_deliveries(publisher: QueueWriter, task: Task) -> None:
    """PoisonMessage if this attempt was delivered more than MAX_DELIVERIES times."""
    try:
        deliveries = count_delivery(publisher, task)
    except redis.RedisError as error:
        # The count is a safety net: a Redis blip (a connection reset after a restart) must
        # not turn into a dead letter. This delivery runs uncounted.
        log.warning("delivery not counted", extra={"task_id": task.request.id, "error": repr(error)})
        return
    if deliveries > MAX_DELIVERIES:
        raise PoisonMessage(f"delivered {deliveries} times without finishing; it may kill the worker that runs it")


def _failed(task: Task, process: ProcessContext, context: WorkerContext | None, letter_id: str, payload: Any,
            error: Exception, extra: dict[str, Any]) -> str:
    """Transient: run the whole task again after a backoff. Permanent or out of retries: dead-letter it."""
    settings, metrics = process.settings, process.metrics
    permanent = isinstance(error, PermanentError)
    if isinstance(error, Unprocessable):
        error = error.error  # recorded under the error that found the payload unprocessable
    kind = type(error).__name__
    retries = task.request.retries
    # Without a context (its build failed: a ConfigurationError) there is no queue writer to retry through.
    if not permanent and context is not None and retries < settings.max_retries:
        delay = backoff(retries, cap=settings.retry_backoff_max_seconds,
                        retry_after=getattr(error, "retry_after", None))
        log.warning("retrying", extra={**extra, "error": str(error), "kind": kind, "retry_in": round(delay, 1),
                                       "retries": retries})
        publish_follow_up(process.app, context.publisher, settings.queue, task=task.name, payload=payload,
                          dedup_key=f"{letter_id}:{task.request.id}:retry:{retries + 1}", task_id=task.request.id,
                          delay=delay, retries=retries + 1)
        metrics.retries.labels(kind).inc()
        return "retrying"
    try:
        process.dead_letters.add(letter_id, task.name, payload, reason=str(error) or kind, error=kind,
                                 attempts=retries + 1)
    except redis.RedisError:
        # Without a durable record the event must not be acknowledged: hand it back.
        raise Reject("dead-letter store unreachable", requeue=True) from None
    metrics.dead_letters.labels(kind).inc()
    log.error("dead-lettered", extra={**extra, "error": str(error), "kind": kind, "retries": retries})
    return "dead-lettered"
