"""Celery tasks: delivery policy (retry, backoff, dead-letter) around the plain archive functions."""

from __future__ import annotations

import logging
import random
from collections.abc import Callable
from datetime import UTC, datetime

import redis
from celery import Celery, Task
from celery.exceptions import Reject, Retry

from recvault.errors import PermanentError
from recvault.events import InvalidCallback, RecordingStatusEvent
from recvault.queue.app import ARCHIVE_TASK, REFRESH_TASK
from recvault.workers.archive import archive_event, utcnow
from recvault.workers.context import ProcessContext, WorkerContext
from recvault.workers.refresh import RefreshTarget, refresh_recording

log = logging.getLogger("recvault.worker")
# First retry waits about this long; each later one doubles, up to retry_backoff_max.
BACKOFF_BASE_SECONDS = 2.0


def backoff(retries: int, *, cap: float, retry_after: float | None = None) -> float:
    """Jittered exponential backoff, never sooner than Twilio's Retry-After."""
    delay = min(cap, BACKOFF_BASE_SECONDS * 2**retries) * random.uniform(0.5, 1.0)
    return max(delay, retry_after or 0.0)


def register_tasks(app: Celery, process: ProcessContext) -> None:
    """Attach recvault's tasks to `app`; they run with the context `process` built at start."""
    settings = process.settings

    # shared=False: these tasks belong to this app only; shared tasks would be copied into
    # every Celery app created later in the process.
    @app.task(name=ARCHIVE_TASK, bind=True, max_retries=None, shared=False)
    def archive_event_task(self: Task, payload: dict) -> str:
        params = payload.get("params") if isinstance(payload, dict) else None
        sid = _first(params, "RecordingSid")
        letter_id = f"{sid}:{_first(params, 'RecordingStatus')}" if sid else f"unparseable:{self.request.id}"
        return _guarded(self, process, letter_id, payload, lambda ctx: _archive(self, ctx, payload))

    def _archive(task: Task, ctx: WorkerContext, payload: dict) -> str:
        try:
            event = RecordingStatusEvent.from_params(payload["params"])
        except (InvalidCallback, KeyError, TypeError) as error:
            _dead_letter(process, task, f"unparseable:{task.request.id}", payload, error)
            return "dead-lettered"
        extra = {"recording_sid": event.recording_sid, "status": event.recording_status,
                 "task_id": task.request.id}
        try:
            result = archive_event(
                event, received_at=_received_at(payload), twilio=ctx.twilio, store=ctx.store,
                policy=ctx.policy, options=ctx.options,
            )
        except Exception as error:
            return _failed(task, event.dedup_key, payload, error, extra)
        if result.price_pending:
            target = RefreshTarget.for_document(event.account_sid, event.recording_sid, result.key)
            _publish_or_requeue(lambda: app.send_task(REFRESH_TASK, args=(target.payload(attempt=1),),
                                                      countdown=settings.price_refresh_seconds, queue=settings.queue))
        log.info("task done", extra={**extra, "outcome": result.outcome})
        return result.outcome

    @app.task(name=REFRESH_TASK, bind=True, max_retries=None, shared=False)
    def refresh_recording_task(self: Task, payload: dict) -> str:
        letter_id = f"{payload.get('recording_sid') if isinstance(payload, dict) else None}:refresh"
        return _guarded(self, process, letter_id, payload, lambda ctx: _refresh(self, ctx, payload))

    def _refresh(task: Task, ctx: WorkerContext, payload: dict) -> str:
        attempt = int(payload.get("attempt", 1))
        extra = {"recording_sid": payload.get("recording_sid"), "task_id": task.request.id}
        try:
            target = RefreshTarget.from_payload(payload)
            done = refresh_recording(
                target, twilio=ctx.twilio, store=ctx.store, prefix=ctx.options.prefix,
                delete_after_archive=ctx.options.delete_after_archive, now=utcnow,
                final=attempt >= settings.price_refresh_attempts,
            )
        except Exception as error:
            return _failed(task, f"{payload.get('recording_sid')}:refresh", payload, error, extra)
        if not done:
            _publish_or_requeue(lambda: app.send_task(
                REFRESH_TASK, args=(target.payload(attempt=attempt + 1),),
                countdown=settings.price_refresh_seconds, queue=settings.queue))
        return "refreshed" if done else "price-pending"

    def _failed(task: Task, letter_id: str, payload: dict, error: Exception, extra: dict) -> str:
        # Anything but a known-permanent failure is retried: an unexpected error may be a blip.
        if not isinstance(error, PermanentError) and task.request.retries < settings.max_retries:
            delay = backoff(task.request.retries, cap=settings.retry_backoff_max,
                            retry_after=getattr(error, "retry_after", None))
            log.warning("retrying", extra={**extra, "error": str(error), "kind": type(error).__name__,
                                           "retry_in": round(delay, 1), "retries": task.request.retries})
            _publish_or_requeue(lambda: task.retry(countdown=delay, exc=error))
        _dead_letter(process, task, letter_id, payload, error)
        log.error("dead-lettered", extra={**extra, "error": str(error), "kind": type(error).__name__})
        return "dead-lettered"


def _guarded(task: Task, process: ProcessContext, letter_id: str, payload: object,
             body: Callable[[WorkerContext], str]) -> str:
    """Run a task body so that no failure is acknowledged without a durable record.

    Celery acknowledges a task that raises (acks_late still acks failures), and on Redis a
    rejection without requeue drops the message too. So every error that escapes the body —
    a context that could not be built, a bug in recvault's own handling — is dead-lettered
    here with its reason; only if even that fails is the message handed back to the queue.
    """
    try:
        return body(process.get())
    except (Retry, Reject):
        raise
    except Exception as error:
        log.error("task failed outside its own handling; dead-lettering",
                  extra={"task_id": task.request.id, "error": str(error), "kind": type(error).__name__})
        _dead_letter(process, task, letter_id, payload, error)
        return "dead-lettered"


def _first(params: object, name: str) -> str | None:
    value = params.get(name) if isinstance(params, dict) else None
    if isinstance(value, list):
        value = value[0] if value else None
    return value if isinstance(value, str) else None


def _publish_or_requeue(publish: Callable[[], object]) -> None:
    """Publish a follow-up message; if the broker refuses, hand the current message back.

    With acks_late, Celery acknowledges (or rejects without requeue) a task that raises an
    unexpected error, which would drop the event. `Reject(requeue=True)` keeps it instead;
    with Redis unreachable even that fails, and the visibility timeout brings it back.
    """
    try:
        publish()
    except Retry:
        raise
    except Exception as error:
        raise Reject(f"could not publish a follow-up message: {error!r}", requeue=True) from None


def _dead_letter(process: ProcessContext, task: Task, letter_id: str, payload: object,
                 error: Exception) -> None:
    try:
        process.dead_letters.add(letter_id, task.name, payload, reason=str(error) or type(error).__name__,
                             error=type(error).__name__, attempts=task.request.retries + 1)
    except redis.RedisError:
        # Without a durable record the event must not be acknowledged: hand it back.
        raise Reject("dead-letter store unreachable", requeue=True) from None


def _received_at(payload: dict) -> datetime:
    try:
        return datetime.fromisoformat(payload["received_at"])
    except (KeyError, TypeError, ValueError):
        return datetime.now(UTC)
