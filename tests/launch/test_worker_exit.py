"""`recvault worker` as a process: it keeps consuming across Redis restarts, holding tasks or not."""

from __future__ import annotations

import os
import time

import psutil
import pytest

from recvault.launch.process import Component
from recvault.queue.celery_factory import create_celery
from recvault.settings import Settings
from recvault.simulator.recordings import Faults
from recvault.storage.s3 import S3Store
from tests.fixtures.worker import archived_count, enqueue_completed, wait_for
from tests.launch.test_worker_group import _workers

# Real worker processes under Redis restarts: the system tier (the fault suite repeats it at scale).
pytestmark = pytest.mark.system


def test_a_worker_holding_tasks_rides_out_a_redis_crash(private_redis, s3_endpoint, sim, sim_account,
                                                        tmp_path) -> None:
    """Redis SIGKILLed while the worker holds a retry (until its ETA) and a streaming archive: kombu used to
    stop the worker then ("Unrecoverable error", see recvault.queue.kombu_transport)."""
    broker = f"{private_redis.url}/0"
    bucket = "worker-redis-crash"
    env = {k: v for k, v in os.environ.items() if not k.startswith("RECVAULT_")}
    env.update(RECVAULT_BROKER_URL=broker, RECVAULT_WORKER_METRICS_PORT="0",
               RECVAULT_S3_ENDPOINT_URL=s3_endpoint, RECVAULT_S3_CREATE_BUCKET="true",
               RECVAULT_S3_BUCKET=bucket, RECVAULT_TWILIO_AUTH_TOKENS=sim_account.token,
               RECVAULT_TWILIO_API_BASE_URL=sim.base_url, RECVAULT_LOG_FORMAT="text", PYTHONUNBUFFERED="1")
    log = tmp_path / "worker.log"
    app = create_celery(Settings(broker_url=broker))
    store = S3Store(bucket, endpoint_url=s3_endpoint)

    def enqueue(rec) -> None:
        enqueue_completed(app, rec, sim.base_url, timeout=20, what="Redis to take the message")

    def archived(rec) -> int:
        return archived_count(store, rec.sid)

    worker = Component("worker", ["worker"], env, log_path=log).start(wait=False)
    try:
        wait_for(lambda: log.read_bytes().count(b" ready.") >= 2, timeout=90, what="both worker processes")
        processes = sorted(child.pid for child in _workers(psutil.Process(worker.pid)))
        waiting = sim.create_recording(duration=2, faults=Faults(rate_limited=1, retry_after_seconds=15))
        streaming = sim.create_recording(duration=60, faults=Faults(bytes_per_second=120_000))
        enqueue(waiting)
        wait_for(lambda: b"retrying" in log.read_bytes(), timeout=30, what="the retry to be held")
        enqueue(streaming)
        wait_for(lambda: log.read_bytes().count(b"Task recvault.archive_event") >= 4, timeout=30,
                 what="the streaming archive to start")
        time.sleep(1)
        private_redis.kill()
        time.sleep(2)  # the worker notices while Redis is away
        private_redis.start()
        back = time.monotonic()
        fresh = sim.create_recording(duration=1)
        enqueue(fresh)
        wait_for(lambda: archived(fresh), timeout=60, what=f"{fresh.sid} archived after the restart; "
                 f"worker log:\n{log.read_text()[-3000:]}")
        after_restart = time.monotonic() - back
        wait_for(lambda: archived(streaming) and archived(waiting), timeout=120, what="the held archives")
        text = log.read_text()
        assert worker.running, f"the worker stopped (exit {worker.process.returncode}):\n{text[-3000:]}"
        assert "Unrecoverable error" not in text and "worker process stopped" not in text
        assert sorted(child.pid for child in _workers(psutil.Process(worker.pid))) == processes
        assert "Couldn't ack" not in text
        assert [archived(rec) for rec in (waiting, streaming, fresh)] == [1, 1, 1]
        print(f"redis crash: next archive {after_restart:.1f} s after Redis was back")
    finally:
        worker.stop()


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
        enqueue_completed(app, rec, sim.base_url, timeout=20, what="Redis to take the message")
        wait_for(lambda: archived_count(store, rec.sid) > 0, timeout=40,
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

