"""The tasks `recvault beat` schedules: reconcile, price sweep, audit seal, ledger flush, queued erasures.

Their bodies are plain functions of a worker context and a payload, run through the delivery
policy every task shares (delivery.py): transient failures are retried with backoff, anything
else is dead-lettered (and replayable with `recvault dlq replay`), and each run is counted in
the `recvault_task_*` metrics, its success under the outcome "done".
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from datetime import UTC, datetime

from celery import Celery, Task

from recvault.audit import ledger, process_key
from recvault.audit.ledger_flush import flush
from recvault.audit.seal import seal_pending, seal_retention
from recvault.audit.witness import witness_from_settings
from recvault.compliance.erasure import run_due
from recvault.days import parse_day
from recvault.errors import PermanentError
from recvault.queue.celery_factory import (
    ERASE_DUE_TASK,
    LEDGER_FLUSH_TASK,
    PRICE_SWEEP_TASK,
    RECONCILE_TASK,
    REFRESH_TASK,
    SEAL_TASK,
)
from recvault.queue.writer import build_message
from recvault.workers.archive import utcnow
from recvault.workers.context import ProcessContext, WorkerContext
from recvault.workers.delivery import deliver
from recvault.workers.price_refresh import RefreshTarget
from recvault.workers.price_sweep import SweepReport, sweep_prices
from recvault.workers.reconcile import (
    GapReport,
    accounts_to_reconcile,
    queue_missing,
    reconcile,
    reconcile_writer,
)

log = logging.getLogger("recvault.worker")


class InvalidSchedule(PermanentError):
    """A scheduled task's payload names no valid days."""


def scheduled_days(values: list[object]) -> list[str]:
    """The values as YYYY-MM-DD days; InvalidSchedule naming the first that is not one."""
    days = []
    for value in values:
        try:
            if not isinstance(value, str):
                raise ValueError(value)
            days.append(parse_day(value).isoformat())
        except ValueError:
            raise InvalidSchedule(f"{value!r} is not a day written YYYY-MM-DD") from None
    return days


def reconcile_days(ctx: WorkerContext, app: Celery, payload: dict) -> list[GapReport]:
    """Reconcile every account recvault knows over payload's date_from..date_to, queueing what is missing."""
    if not isinstance(payload, dict):
        raise InvalidSchedule(f"reconcile payload is not an object: {payload!r}")
    date_from, date_to = scheduled_days([payload.get("date_from"), payload.get("date_to")])
    settings = ctx.settings
    writer = reconcile_writer(settings, app)
    try:
        enqueue = queue_missing(app, writer, settings.queue, ctx.twilio)
        return [reconcile(ctx.twilio, ctx.store, ctx.options.prefix, account, date_from=date_from, date_to=date_to,
                          enqueue=enqueue) for account in accounts_to_reconcile(settings)]
    finally:
        writer.close()


def sweep_days(ctx: WorkerContext, app: Celery, payload: dict) -> SweepReport:
    """Queue a final price refresh for every unpriced recording of payload's dates."""
    listed = payload.get("dates") if isinstance(payload, dict) else None
    if not isinstance(listed, list) or not listed:
        raise InvalidSchedule(f"price sweep payload names no dates: {payload!r}")
    dates = scheduled_days(listed)
    settings = ctx.settings

    def publish(target: RefreshTarget) -> bool:
        # The last attempt: it stores a price Twilio has by now, and ends the chain either way.
        # Once per recording and sweep, however often this sweep runs.
        message = build_message(app, settings.queue, f"{target.recording_sid}:sweep:{dates[-1]}",
                                target.payload(attempt=settings.price_refresh_attempts), task=REFRESH_TASK)
        return ctx.publisher.publish(message)

    return sweep_prices(ctx.store, ctx.options.prefix, dates, publish)


def seal_periods(ctx: WorkerContext) -> str:
    """Seal every period of the audit trail that is due and not sealed yet, recording each in the witness."""
    settings = ctx.settings
    sealed = seal_pending(ctx.store, ctx.options.prefix, ctx.policy.longest_retention_days(), utcnow(),
                          period_seconds=settings.seal_period_seconds, witness=witness_from_settings(settings),
                          audit_key=process_key.from_settings(settings))
    return f"{len(sealed)} period(s) sealed"


def flush_ledger(ctx: WorkerContext) -> str:
    """Copy the accepted-callback ledger to S3 and trim what was copied; malformed entries go aside."""
    stream = ctx.publisher.keys.recvault(ledger.STREAM)
    flushed = flush(ctx.publisher.client, stream, ctx.store, ctx.options.prefix,
                    seal_retention(ctx.policy.longest_retention_days(), utcnow()))
    aside = f", {flushed.rejected} malformed row(s) moved aside" if flushed.rejected else ""
    return f"{flushed.written} accepted row(s) flushed{aside}"


def run_due_erasures(ctx: WorkerContext) -> str:
    """Run the erasures queued with `recvault erase --when-allowed` whose locks and holds have ended."""
    now = datetime.now(UTC)
    outcomes = run_due(ctx.store, ctx.options.prefix, now,
                       record_retention=seal_retention(ctx.policy.longest_retention_days(), now))
    erased = sum(1 for o in outcomes if o.status == "erased")
    log.info("queued erasures run", extra={"erased": erased, "waiting": len(outcomes) - erased})
    return f"{erased} erased, {len(outcomes) - erased} waiting"


def register_scheduled_tasks(app: Celery, process: ProcessContext) -> None:
    """Attach the scheduled tasks to `app`; they run with the context `process` built at start."""

    @app.task(name=RECONCILE_TASK, bind=True, max_retries=None, shared=False)
    def reconcile_days_task(self: Task, payload: dict) -> str:
        letter_id = f"reconcile:{payload.get('date_from')}:{payload.get('date_to')}" if isinstance(
            payload, dict) else "reconcile:unparseable"

        def body(ctx: WorkerContext) -> str:
            reports = reconcile_days(ctx, app, payload)
            for report in reports:
                log.info("reconciled", extra={"task_id": self.request.id, "account_sid": report.account_sid,
                                              "listed": report.listed, "archived": report.archived,
                                              "missing": len(report.missing), "queued": report.count("queued"),
                                              "erased": len(report.erased)})
            return f"{sum(len(r.missing) for r in reports)} missing"

        return deliver(self, process, letter_id, payload, body, report=True)

    @app.task(name=PRICE_SWEEP_TASK, bind=True, max_retries=None, shared=False)
    def sweep_prices_task(self: Task, payload: dict) -> str:
        letter_id = f"price-sweep:{payload.get('dates')}" if isinstance(payload, dict) else "price-sweep:unparseable"

        def body(ctx: WorkerContext) -> str:
            report = sweep_days(ctx, app, payload)
            log.info("price sweep done", extra={"task_id": self.request.id, "documents": report.documents,
                                                "unpriced": report.unpriced, "queued": report.queued})
            return f"{report.queued} refresh(es) queued"

        return deliver(self, process, letter_id, payload, body, report=True)

    _register_simple(app, process, SEAL_TASK, "seal", seal_periods)
    _register_simple(app, process, LEDGER_FLUSH_TASK, "ledger-flush", flush_ledger)
    _register_simple(app, process, ERASE_DUE_TASK, "erasures", run_due_erasures)


def _register_simple(app: Celery, process: ProcessContext, name: str, letter: str,
                     work: Callable[[WorkerContext], str]) -> None:
    """A scheduled task whose body needs only the worker context; its payload names the run."""

    @app.task(name=name, bind=True, max_retries=None, shared=False)
    def task(self: Task, payload: dict) -> str:
        letter_id = f"{letter}:{json.dumps(payload, sort_keys=True, default=str)}"
        return deliver(self, process, letter_id, payload, work, report=True)
