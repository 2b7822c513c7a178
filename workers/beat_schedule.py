"""What `recvault beat` schedules, and how it publishes: through recvault's queue writer, once per job and day.

Celery beat decides when a job is due; the scheduler below then publishes it like every
other recvault message: with a pending record (a worker killed as it takes the job cannot
lose it) and a dedup key naming the job and its day, so a beat restarted after publishing,
or a second beat started by mistake, queues no job twice.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from functools import cached_property
from typing import Any

import redis
from celery.beat import BeatLazyFunc, PersistentScheduler
from celery.schedules import crontab

from recvault.audit.seal import LEDGER_FLUSH_INTERVAL
from recvault.queue.celery_factory import ERASE_DUE_TASK, LEDGER_FLUSH_TASK, PRICE_SWEEP_TASK, RECONCILE_TASK, SEAL_TASK
from recvault.queue.writer import QueueWriter, build_message
from recvault.versions import MESSAGE_FIELD, MESSAGE_VERSION

log = logging.getLogger("recvault.beat")

# Daily, in UTC, once Twilio has finished the previous day: its recordings, then their prices.
RECONCILE_AT = crontab(hour=2, minute=30)
PRICE_SWEEP_AT = crontab(hour=3, minute=30)
# Hourly: queued erasures run within the hour their retention or last hold ends.
ERASE_DUE_AT = crontab(minute=15)
# The audit trail is sealed period by period (RECVAULT_SEAL_PERIOD_SECONDS, 5 minutes at the
# least), each once audit.seal.GRACE has passed since it ended: a run every 5 minutes seals every
# period due, oldest first.
SEAL_AT = crontab(minute="*/5")
# The accepted-callback ledger moves from Redis to S3 every quarter of an hour (a few hundred KB
# of Redis per 1,000 callbacks a minute until then); the sealer's grace follows this interval.
LEDGER_FLUSH_AT = crontab(minute=f"*/{int(LEDGER_FLUSH_INTERVAL.total_seconds()) // 60}")
# Days the price sweep looks back over (a recording's own refresh chain covers its first hour).
PRICE_SWEEP_DAYS = 3
# A job's dedup key outlives its day, so a restarted or second beat cannot publish that day's job again.
BEAT_DEDUP_SECONDS = 3 * 24 * 3600
# Tries to publish a due job while Redis is away (waiting 1, 2, 4, … s between them), then beat logs the loss.
PUBLISH_ATTEMPTS = 7


def _job(payload: dict[str, Any]) -> dict[str, Any]:
    """A job's payload with the message version it is written in."""
    return {MESSAGE_FIELD: MESSAGE_VERSION, **payload}


def _days_back(now: datetime, first: int, last: int) -> list[str]:
    today = now.astimezone(UTC).date()
    return [(today - timedelta(days=n)).isoformat() for n in range(last, first - 1, -1)]


def reconcile_payload() -> dict[str, Any]:
    """Reconcile the previous UTC day."""
    (day,) = _days_back(datetime.now(UTC), 1, 1)
    return _job({"date_from": day, "date_to": day})


def price_sweep_payload() -> dict[str, Any]:
    """Sweep the previous PRICE_SWEEP_DAYS UTC days, oldest first."""
    return _job({"dates": _days_back(datetime.now(UTC), 1, PRICE_SWEEP_DAYS)})


def erase_due_payload() -> dict[str, Any]:
    """This UTC hour's pass over queued erasures (the hour makes its dedup key)."""
    return _job({"hour": datetime.now(UTC).strftime("%Y-%m-%dT%H")})


def seal_payload() -> dict[str, Any]:
    """Names its 5 minutes, so each run has a dedup key of its own (the task seals every period due)."""
    return _job({"slot": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M")})


def ledger_flush_payload() -> dict[str, Any]:
    """Names its quarter-hour, so each run has a dedup key of its own."""
    return _job({"slot": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M")})


def beat_schedule() -> dict[str, dict[str, Any]]:
    """Celery's beat_schedule: the payload of each job is built when it is due."""
    return {
        "reconcile-previous-day": {"task": RECONCILE_TASK, "schedule": RECONCILE_AT,
                                   "args": (BeatLazyFunc(reconcile_payload),)},
        "price-sweep": {"task": PRICE_SWEEP_TASK, "schedule": PRICE_SWEEP_AT,
                        "args": (BeatLazyFunc(price_sweep_payload),)},
        "due-erasures": {"task": ERASE_DUE_TASK, "schedule": ERASE_DUE_AT,
                         "args": (BeatLazyFunc(erase_due_payload),)},
        "seal-audit-periods": {"task": SEAL_TASK, "schedule": SEAL_AT, "args": (BeatLazyFunc(seal_payload),)},
        "flush-accepted-ledger": {"task": LEDGER_FLUSH_TASK, "schedule": LEDGER_FLUSH_AT,
                                  "args": (BeatLazyFunc(ledger_flush_payload),)},
    }


def job_key(task: str, payload: dict[str, Any]) -> str:
    """The dedup key of one job on one day: its task and its payload (which names the day).

    The payload's message version is left out, so a beat of another release restarted in its
    place during an upgrade meets the keys of the jobs the first one published.
    """
    named = {key: value for key, value in payload.items() if key != MESSAGE_FIELD}
    return f"beat:{task}:{json.dumps(named, sort_keys=True, separators=(',', ':'))}"


class WriterScheduler(PersistentScheduler):
    """Celery's persistent scheduler, publishing each due job through recvault's queue writer.

    Celery's Scheduler hands a job whose task this process does not define (beat defines
    none) to `send_task`, having advanced the schedule and worked out the job's arguments;
    a failure there is logged by beat and the job waits for its next time.
    """

    @cached_property
    def writer(self) -> QueueWriter:
        """The writer on the broker the app is configured with (made when first used; connects then)."""
        options = self.app.conf.broker_transport_options or {}
        return QueueWriter.for_app(self.app, self.app.conf.task_default_queue, BEAT_DEDUP_SECONDS,
                                   timeout=options.get("socket_timeout", 5),
                                   connect_timeout=options.get("socket_connect_timeout", 3))

    def send_task(self, name: str, args: Sequence[Any] = (), kwargs: Any = None, **options: Any) -> None:
        """Publish a due job (beat has worked out its payload) through the writer, once per job and day."""
        payload: dict[str, Any] = args[0]
        message = build_message(self.app, self.app.conf.task_default_queue, job_key(name, payload), payload,
                                task=name)
        queued = self._publish(message)
        log.info("scheduled job queued" if queued else "scheduled job already queued",
                 extra={"task": name, "payload": payload, "task_id": message.task_id})

    def _publish(self, message: Any) -> bool:
        for attempt in range(PUBLISH_ATTEMPTS):
            try:
                return self.writer.publish(message)
            except redis.RedisError as error:
                if attempt == PUBLISH_ATTEMPTS - 1:
                    raise
                log.warning("broker unreachable; scheduled job not queued yet", extra={"error": repr(error)})
                time.sleep(2**attempt)
        raise AssertionError("unreachable")  # the loop returns or raises

    def close(self) -> None:
        super().close()
        if "writer" in self.__dict__:
            self.writer.close()
