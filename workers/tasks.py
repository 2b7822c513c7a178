"""Celery tasks: a few lines of delivery policy (delivery.py) around the plain archive functions."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime

from celery import Celery, Task

from recvault.errors import PermanentError
from recvault.events import InvalidCallback, RecordingStatusEvent
from recvault.queue.celery_factory import ARCHIVE_TASK, REFRESH_TASK
from recvault.queue.heartbeat import UnackedHeartbeat, install_heartbeat
from recvault.workers.archive import archive_event, utcnow
from recvault.workers.beat_tasks import register_scheduled_tasks
from recvault.workers.context import ProcessContext, WorkerContext
from recvault.workers.delivery import backoff, dead_letter, guarded, publish_follow_up
from recvault.workers.price_refresh import RefreshTarget, refresh_recording

log = logging.getLogger("recvault.worker")


def register_tasks(app: Celery, process: ProcessContext) -> None:
    """Attach recvault's tasks to `app`; they run with the context `process` built at start."""
    settings = process.settings
    metrics = process.metrics
    install_heartbeat(app, lambda held: UnackedHeartbeat.for_writer(process.writer(), settings, held=held))

    def follow_up(ctx: WorkerContext, task: str, payload: dict, dedup_key: str, *, task_id: str | None = None,
                  delay: float = 0, retries: int = 0) -> None:
        publish_follow_up(app, ctx.publisher, settings.queue, task=task, payload=payload, dedup_key=dedup_key,
                          task_id=task_id, delay=delay, retries=retries)

    # shared=False: these tasks belong to this app only; shared tasks would be copied into
    # every Celery app created later in the process.
    @app.task(name=ARCHIVE_TASK, bind=True, max_retries=None, shared=False)
    def archive_event_task(self: Task, payload: dict) -> str:
        params = payload.get("params") if isinstance(payload, dict) else None
        sid = _first(params, "RecordingSid")
        letter_id = f"{sid}:{_first(params, 'RecordingStatus')}" if sid else f"unparseable:{self.request.id}"
        return _measured(ARCHIVE_TASK, lambda: guarded(self, process, letter_id, payload,
                                                       lambda ctx: _archive(self, ctx, payload)))

    def _measured(name: str, run: Callable[[], str]) -> str:
        started, outcome = time.perf_counter(), "handed-back"  # unless run() returns
        try:
            outcome = run()
            return outcome
        finally:
            metrics.task_seconds.labels(name).observe(time.perf_counter() - started)
            metrics.tasks.labels(name, outcome).inc()

    def _archive(task: Task, ctx: WorkerContext, payload: dict) -> str:
        try:
            # Messages queued before labels existed carry none.
            event = RecordingStatusEvent.from_params(payload["params"], payload.get("labels"))
        except (InvalidCallback, KeyError, TypeError) as error:
            dead_letter(process, task, f"unparseable:{task.request.id}", payload, error)
            return "dead-lettered"
        extra = {"recording_sid": event.recording_sid, "status": event.recording_status,
                 "task_id": task.request.id}
        received_at = _received_at(payload)
        metrics.in_flight.inc()
        try:
            result = archive_event(
                event, received_at=received_at, twilio=ctx.twilio, store=ctx.store,
                policy=ctx.policy, options=ctx.options,
            )
        except Exception as error:
            return _failed(task, ctx, event.dedup_key, payload, error, extra)
        finally:
            metrics.in_flight.dec()
        if result.outcome == "archived" and result.media is not None:
            metrics.archived.inc()
            metrics.archived_bytes.inc(result.media.size)
            metrics.callback_to_archive.observe(max(0.0, (utcnow() - received_at).total_seconds()))
        if result.price_pending:
            target = RefreshTarget.for_document(event.account_sid, event.recording_sid, result.key)
            follow_up(ctx, REFRESH_TASK, target.payload(attempt=1), f"{event.recording_sid}:refresh:1",
                      delay=settings.price_refresh_seconds)
        log.info("task done", extra={**extra, "outcome": result.outcome})
        return result.outcome

    @app.task(name=REFRESH_TASK, bind=True, max_retries=None, shared=False)
    def refresh_recording_task(self: Task, payload: dict) -> str:
        letter_id = f"{payload.get('recording_sid') if isinstance(payload, dict) else None}:refresh"
        return _measured(REFRESH_TASK, lambda: guarded(self, process, letter_id, payload,
                                                       lambda ctx: _refresh(self, ctx, payload)))

    def _refresh(task: Task, ctx: WorkerContext, payload: dict) -> str:
        attempt = int(payload.get("attempt", 1))
        letter_id = f"{payload.get('recording_sid')}:refresh"
        extra = {"recording_sid": payload.get("recording_sid"), "task_id": task.request.id}
        try:
            target = RefreshTarget.from_payload(payload)
            done = refresh_recording(
                target, twilio=ctx.twilio, store=ctx.store, prefix=ctx.options.prefix,
                delete_after_archive=ctx.options.delete_after_archive, now=utcnow,
                final=attempt >= settings.price_refresh_attempts,
            )
        except Exception as error:
            return _failed(task, ctx, letter_id, payload, error, extra)
        if not done:
            follow_up(ctx, REFRESH_TASK, target.payload(attempt=attempt + 1),
                      f"{target.recording_sid}:refresh:{attempt + 1}", delay=settings.price_refresh_seconds)
        return "refreshed" if done else "price-pending"

    def _failed(task: Task, ctx: WorkerContext, letter_id: str, payload: dict, error: Exception,
                extra: dict) -> str:
        # Anything but a known-permanent failure is retried: an unexpected error may be a blip.
        retries = task.request.retries
        if not isinstance(error, PermanentError) and retries < settings.max_retries:
            delay = backoff(retries, cap=settings.retry_backoff_max, retry_after=getattr(error, "retry_after", None))
            metrics.retries.labels(type(error).__name__).inc()
            log.warning("retrying", extra={**extra, "error": str(error), "kind": type(error).__name__,
                                           "retry_in": round(delay, 1), "retries": retries})
            follow_up(ctx, task.name, payload, f"{letter_id}:{task.request.id}:retry:{retries + 1}",
                      task_id=task.request.id, delay=delay, retries=retries + 1)
            return "retrying"
        dead_letter(process, task, letter_id, payload, error)
        log.error("dead-lettered", extra={**extra, "error": str(error), "kind": type(error).__name__})
        return "dead-lettered"

    register_scheduled_tasks(app, process)


def _first(params: object, name: str) -> str | None:
    value = params.get(name) if isinstance(params, dict) else None
    if isinstance(value, list):
        value = value[0] if value else None
    return value if isinstance(value, str) else None


def _received_at(payload: dict) -> datetime:
    try:
        return datetime.fromisoformat(payload["received_at"])
    except (KeyError, TypeError, ValueError):
        return datetime.now(UTC)
