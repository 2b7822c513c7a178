"""Celery tasks: the plain archive and refresh functions, each run through the delivery policy (delivery.py)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from celery import Celery, Task

from recvault.events import RecordingStatusEvent
from recvault.queue.celery_factory import ARCHIVE_TASK, REFRESH_TASK
from recvault.queue.heartbeat import UnackedHeartbeat, install_heartbeat
from recvault.workers.archive import archive_event, utcnow
from recvault.workers.beat_tasks import register_scheduled_tasks
from recvault.workers.context import ProcessContext, WorkerContext
from recvault.workers.delivery import Unprocessable, deliver, publish_follow_up
from recvault.workers.price_refresh import InvalidRefresh, RefreshTarget, refresh_recording

log = logging.getLogger("recvault.worker")


def register_tasks(app: Celery, process: ProcessContext) -> None:
    """Attach recvault's tasks to `app`; they run with the context `process` built at start."""
    settings = process.settings
    metrics = process.metrics
    install_heartbeat(app, lambda held: UnackedHeartbeat.for_writer(process.writer(), settings, held=held))

    def follow_up(ctx: WorkerContext, task: str, payload: dict, dedup_key: str, *, delay: float = 0) -> None:
        publish_follow_up(app, ctx.publisher, settings.queue, task=task, payload=payload, dedup_key=dedup_key,
                          delay=delay)

    # shared=False: these tasks belong to this app only; shared tasks would be copied into
    # every Celery app created later in the process.
    @app.task(name=ARCHIVE_TASK, bind=True, max_retries=None, shared=False)
    def archive_event_task(self: Task, payload: dict) -> str:
        try:
            # Messages queued before labels existed carry none.
            event = RecordingStatusEvent.from_params(payload["params"], payload.get("labels"))
        except Exception as error:  # any shape this release cannot read: the delivery policy decides
            # Filed by task id: a payload that fails to parse cannot be trusted to name its recording.
            # The policy reads the payload's version first: a newer release's message is handed back.
            return deliver(self, process, f"unparseable:{self.request.id}", payload, _refuse(error))
        return deliver(self, process, event.dedup_key, payload, lambda ctx: _archive(self, ctx, event, payload),
                       extra={"recording_sid": event.recording_sid, "status": event.recording_status})

    def _archive(task: Task, ctx: WorkerContext, event: RecordingStatusEvent, payload: dict) -> str:
        received_at = _received_at(payload)
        metrics.in_flight.inc()
        try:
            result = archive_event(
                event, received_at=received_at, twilio=ctx.twilio, store=ctx.store,
                policy=ctx.policy, options=ctx.options,
            )
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
        log.info("task done", extra={"recording_sid": event.recording_sid, "status": event.recording_status,
                                     "task_id": task.request.id, "outcome": result.outcome})
        return result.outcome

    @app.task(name=REFRESH_TASK, bind=True, max_retries=None, shared=False)
    def refresh_recording_task(self: Task, payload: dict) -> str:
        sid = payload.get("recording_sid") if isinstance(payload, dict) else None
        return deliver(self, process, f"{sid}:refresh", payload, lambda ctx: _refresh(ctx, payload),
                       extra={"recording_sid": sid})

    def _refresh(ctx: WorkerContext, payload: Any) -> str:
        if not isinstance(payload, dict):
            raise InvalidRefresh(f"refresh payload is not an object: {payload!r}")
        try:
            attempt = int(payload.get("attempt", 1))
        except (TypeError, ValueError):
            raise InvalidRefresh(f"refresh attempt is not a number: {payload.get('attempt')!r}") from None
        target = RefreshTarget.from_payload(payload)
        done = refresh_recording(
            target, twilio=ctx.twilio, store=ctx.store, prefix=ctx.options.prefix,
            delete_after_archive=ctx.options.delete_after_archive, now=utcnow,
            final=attempt >= settings.price_refresh_attempts,
        )
        if not done:
            follow_up(ctx, REFRESH_TASK, target.payload(attempt=attempt + 1),
                      f"{target.recording_sid}:refresh:{attempt + 1}", delay=settings.price_refresh_seconds)
        return "refreshed" if done else "price-pending"

    register_scheduled_tasks(app, process)


def _refuse(error: Exception) -> Callable[[WorkerContext], str]:
    """A task body that dead-letters its message at once, under `error`."""
    def body(_: WorkerContext) -> str:
        raise Unprocessable(error)
    return body


def _received_at(payload: dict) -> datetime:
    try:
        return datetime.fromisoformat(payload["received_at"])
    except (KeyError, TypeError, ValueError):
        return datetime.now(UTC)
