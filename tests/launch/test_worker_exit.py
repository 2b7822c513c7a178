"""`recvault worker` as a process: it keeps consuming across Redis restarts, and says so when it stops."""

from __future__ import annotations

import os
import time

import pytest
import redis

from recvault.launch.process import Component
from recvault.queue.celery_factory import create_celery
from recvault.queue.writer import QueueWriter, build_message
from recvault.settings import Settings
from recvault.simulator.callbacks import callback_params
from recvault.simulator.recordings import Faults
from recvault.storage.s3 import S3Store
from tests.fixtures.worker import wait_for

# Real worker processes under Redis restarts: the system tier (the fault suite repeats it at scale).
pytestmark = pytest.mark.system


def test_a_worker_that_stops_on_a_broker_error_exits_non_zero(private_redis, s3_endpoint, sim, sim_account,
                                                                tmp_path) -> None:
    broker = f"{private_redis.url}/0"
    env = {k: v for k, v in os.environ.items() if not k.startswith("RECVAULT_")}
    env.update(RECVAULT_BROKER_URL=broker, RECVAULT_WORKER_METRICS_PORT="0",
               RECVAULT_S3_ENDPOINT_URL=s3_endpoint, RECVAULT_S3_CREATE_BUCKET="true",
               RECVAULT_S3_BUCKET="worker-exit", RECVAULT_TWILIO_AUTH_TOKENS=sim_account.token,
               RECVAULT_TWILIO_API_BASE_URL=sim.base_url, PYTHONUNBUFFERED="1")
    log = tmp_path / "worker.log"
    worker = Component("worker", ["worker", "-c", "1"], env, log_path=log).start(wait=False)
    try:
        wait_for(lambda: b' ready."' in log.read_bytes(), timeout=60, what="the worker to start")
        # A 429 with a long Retry-After: the worker holds the retry, unacknowledged, in memory.
        rec = sim.create_recording(duration=2, faults=Faults(rate_limited=100, retry_after_seconds=60))
        app = create_celery(Settings(broker_url=broker))
        message = build_message(app, "recvault", f"{rec.sid}:completed",
                                {"params": callback_params(rec, "completed", api_base=sim.base_url)})
        QueueWriter.for_app(app, "recvault", 60, timeout=2, connect_timeout=2).enqueue([message])
        wait_for(lambda: b"retrying" in log.read_bytes(), timeout=30, what="the retry to be held")
        private_redis.stop()  # Celery/kombu may stop the worker with "Unrecoverable error" here
        deadline = time.monotonic() + 15
        while worker.running and time.monotonic() < deadline:
            time.sleep(0.2)
        # Still running is fine; having stopped on its own with status 0 would hide the failure.
        assert worker.running or worker.process.returncode != 0, log.read_text()[-2000:]
    finally:
        worker.kill()


def test_a_worker_keeps_consuming_after_redis_restarts_under_it(private_redis, s3_endpoint, sim, sim_account,
                                                                 tmp_path) -> None:
    """Celery issues #8030 and #10302: workers that reconnect after a Redis restart, then consume nothing."""
    broker = f"{private_redis.url}/0"
    bucket = "worker-redis-restart"
    env = {k: v for k, v in os.environ.items() if not k.startswith("RECVAULT_")}
    env.update(RECVAULT_BROKER_URL=broker, RECVAULT_WORKER_METRICS_PORT="0",
               RECVAULT_S3_ENDPOINT_URL=s3_endpoint, RECVAULT_S3_CREATE_BUCKET="true",
               RECVAULT_S3_BUCKET=bucket, RECVAULT_TWILIO_AUTH_TOKENS=sim_account.token,
               RECVAULT_TWILIO_API_BASE_URL=sim.base_url, PYTHONUNBUFFERED="1")
    log = tmp_path / "worker.log"
    app = create_celery(Settings(broker_url=broker))
    store = S3Store(bucket, endpoint_url=s3_endpoint)

    def archive_one() -> None:
        rec = sim.create_recording(duration=1)
        message = build_message(app, "recvault", f"{rec.sid}:completed",
                                {"params": callback_params(rec, "completed", api_base=sim.base_url)})
        writer = QueueWriter.for_app(app, "recvault", 60, timeout=2, connect_timeout=2)
        try:
            wait_for(lambda: _enqueued(writer, message), timeout=20, what="Redis to take the message")
        finally:
            writer.close()
        wait_for(lambda: any(rec.sid in key for key in store.list_keys("metadata/")), timeout=40,
                 what=f"{rec.sid} to be archived; worker log:\n{log.read_text()[-3000:]}")

    worker = Component("worker", ["worker", "-c", "1"], env, log_path=log).start(wait=False)
    try:
        wait_for(lambda: b' ready."' in log.read_bytes(), timeout=60, what="the worker to start")
        archive_one()
        for take_down in (private_redis.kill, private_redis.stop):  # a crash, then a clean restart
            take_down()
            time.sleep(1)  # the worker notices while Redis is away
            private_redis.start()
            archive_one()
            assert worker.running, f"the worker stopped (exit {worker.process.returncode}):\n{log.read_text()[-3000:]}"
    finally:
        worker.kill()


def _enqueued(writer: QueueWriter, message) -> bool:
    try:
        return writer.enqueue([message]) == [True]
    except redis.RedisError:
        return False
