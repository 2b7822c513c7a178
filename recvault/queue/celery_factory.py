"""The Celery app factory shared by ingest (to build messages) and workers (to run tasks)."""

from __future__ import annotations

from celery import Celery

from recvault.queue import kombu_transport
from recvault.queue.broker import BrokerAddress, celery_broker_url
from recvault.queue.kombu_redis import check_transport_options
from recvault.settings import Settings

ARCHIVE_TASK = "recvault.archive_event"
RESTORE_SWEEP_SECONDS = 5
REFRESH_TASK = "recvault.refresh_recording"
# Scheduled by `recvault beat`: reconcile a window of days, and one more price refresh for the unpriced.
RECONCILE_TASK = "recvault.reconcile_days"
PRICE_SWEEP_TASK = "recvault.sweep_prices"
# Scheduled by `recvault beat` too: erasures queued with `recvault erase --when-allowed` whose locks ended.
ERASE_DUE_TASK = "recvault.run_due_erasures"
# Also scheduled: seal the audit trail's finished days; copy the accepted-callback ledger to S3.
SEAL_TASK = "recvault.seal_audit_days"
LEDGER_FLUSH_TASK = "recvault.flush_accepted_ledger"


def create_celery(settings: Settings) -> Celery:
    """Build the Celery app from settings; nothing connects until it is used."""
    transport = {
        # Short: a live worker's heartbeat rewrites the records of what it holds every third of
        # this (heartbeat.py), so only a dead worker's messages ever get this old.
        "visibility_timeout": settings.visibility_timeout_seconds,
        # kombu looks for abandoned messages every 5 s instead of about every 100 s, so a
        # killed worker's messages are handed out within visibility_timeout_seconds + 5 s.
        "unacked_restore_interval": RESTORE_SWEEP_SECONDS,
        "unacked_restore_throttle": 1,
        "socket_timeout": settings.redis_socket_timeout_seconds,
        "socket_connect_timeout": settings.redis_connect_timeout_seconds,
        "socket_keepalive": True,
        "health_check_interval": 25,
        **settings.broker_transport_options,
    }
    # Refused here, at start, rather than on the first callback: ingest must write where
    # the workers' transport reads.
    check_transport_options(transport)
    BrokerAddress.parse(settings.broker_url, transport)  # a URL no client could use stops us here
    # kombu's Redis channels, with a closed channel's defect worked around (see kombu_transport):
    # without it, a worker holding a task when the broker went away stopped ("Unrecoverable error").
    kombu_transport.install()
    app = Celery("recvault", broker=celery_broker_url(settings.broker_url), set_as_current=False)
    app.conf.update(
        broker_transport_options=transport,
        broker_connection_retry_on_startup=True,
        task_serializer="json",
        accept_content=["json"],
        result_serializer="json",
        task_ignore_result=True,
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        # A task killed by the hard time limit is handed back, never acknowledged and lost;
        # the soft limit, a minute earlier, goes through the normal retry/dead-letter path.
        task_acks_on_timeout=False,
        worker_prefetch_multiplier=1,
        task_default_queue=settings.queue,
        task_time_limit=settings.task_time_limit_seconds,
        task_soft_time_limit=max(settings.task_time_limit_seconds - 60, 1),
        worker_hijack_root_logger=False,
        # Task events (received, started, succeeded, …) for `celery events` and Flower.
        worker_send_task_events=settings.task_events,
        timezone="UTC",
        enable_utc=True,
    )
    return app
