"""A message that kills its pool process every time is dead-lettered after a bounded number of deliveries."""

from __future__ import annotations

import json
import os
import signal

import psutil
import pytest
import redis

from recvault.launch.process import Component
from recvault.queue.celery_factory import create_celery
from recvault.queue.writer import QueueWriter, build_message
from recvault.settings import Settings
from recvault.simulator.callbacks import callback_params
from recvault.simulator.recordings import Faults
from recvault.workers.dead_letters import DLQ_KEY
from recvault.workers.delivery import MAX_DELIVERIES
from tests.fixtures.worker import wait_for

pytestmark = pytest.mark.system


def test_a_recording_that_kills_its_worker_is_dead_lettered_not_retried_forever(
        redis_url, s3_store, sim, sim_account, tmp_path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RECVAULT_")}
    env.update(RECVAULT_BROKER_URL=redis_url, RECVAULT_WORKER_METRICS_PORT="0",
               RECVAULT_S3_ENDPOINT_URL=s3_store.endpoint_url,
               RECVAULT_S3_BUCKET=s3_store.bucket, RECVAULT_TWILIO_AUTH_TOKENS=sim_account.token,
               RECVAULT_TWILIO_API_BASE_URL=sim.base_url, PYTHONUNBUFFERED="1")
    # A slow download: each delivery is still running when its pool process is killed (an OOM kill).
    rec = sim.create_recording(duration=60, faults=Faults(bytes_per_second=50_000))
    log = tmp_path / "worker.log"
    # A prefork pool (still supported) hands a killed child's task back at once; the default
    # threads workers' path, a redelivery after the visibility timeout, is the fault suite's.
    worker = Component("worker", ["worker", "--pool", "prefork", "-c", "1"], env, log_path=log).start(wait=False)
    client = redis.Redis.from_url(redis_url)
    kills = 0
    try:
        wait_for(lambda: b" ready." in log.read_bytes(), timeout=60, what="the worker")
        app = create_celery(Settings(broker_url=redis_url))
        QueueWriter.for_app(app, "recvault", 60, timeout=2, connect_timeout=2).publish(
            build_message(app, "recvault", f"{rec.sid}:completed",
                          {"params": callback_params(rec, "completed", api_base=sim.base_url)}))
        main = psutil.Process(worker.pid)
        while not client.hexists(DLQ_KEY, f"{rec.sid}:completed") and kills < 2 * MAX_DELIVERIES:
            wait_for(lambda seen=rec.media_requests: rec.media_requests > seen
                     or client.hexists(DLQ_KEY, f"{rec.sid}:completed"), timeout=60, what="the next delivery")
            if client.hexists(DLQ_KEY, f"{rec.sid}:completed"):
                break
            for child in main.children():
                os.kill(child.pid, signal.SIGKILL)
            kills += 1
        letter = json.loads(wait_for(lambda: client.hget(DLQ_KEY, f"{rec.sid}:completed"), timeout=60,
                                     what="the dead letter"))
        # The letter is stored before the delivery finishes (its audit entry, then the
        # acknowledgement): the message leaves the queue and the unacked set once that is done.
        wait_for(lambda: client.llen("recvault") == 0 and client.hlen("unacked") == 0, timeout=60,
                 what="the dead-lettered message to be acknowledged")
        requests = rec.media_requests
    finally:
        worker.stop()
    assert letter["error"] == "PoisonMessage" and f"delivered {MAX_DELIVERIES + 1} times" in letter["reason"]
    assert kills == MAX_DELIVERIES
    # Settled, not cycling: the stop hands nothing back and nothing fetched the media again.
    assert client.llen("recvault") == 0 and client.hlen("unacked") == 0
    assert rec.media_requests == requests
