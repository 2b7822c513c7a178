"""`recvault worker` as a process: when Celery's worker stops on an error, the exit status says so."""

from __future__ import annotations

import os
import time

from recvault.launch.process import Component
from recvault.queue.app import create_celery
from recvault.queue.writer import QueueWriter, build_message
from recvault.settings import Settings
from recvault.simulator.callbacks import callback_params
from recvault.simulator.recordings import Faults
from tests.fixtures.worker import wait_for


def test_a_worker_that_stops_on_a_broker_error_exits_non_zero(private_redis, s3_endpoint, sim, sim_account,
                                                                tmp_path) -> None:
    broker = f"{private_redis.url}/0"
    env = {k: v for k, v in os.environ.items() if not k.startswith("RECVAULT_")}
    env.update(RECVAULT_BROKER_URL=broker, RECVAULT_S3_ENDPOINT_URL=s3_endpoint, RECVAULT_S3_CREATE_BUCKET="true",
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
