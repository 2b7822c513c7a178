"""With the shipped defaults, a worker killed mid-upload has its recording archived by another within 60 s."""

from __future__ import annotations

import json
import os
import time

import pytest

from recvault.launch.process import Component
from recvault.queue.celery_factory import create_celery
from recvault.queue.writer import QueueWriter, build_message
from recvault.settings import Settings
from recvault.simulator.callbacks import callback_params
from recvault.simulator.recordings import Faults
from tests.fixtures.worker import wait_for

pytestmark = pytest.mark.system

# The promise: another worker has the recording within this long after the kill.
RECOVERY_SECONDS = 60


def worker(name: str, env: dict[str, str], tmp_path) -> Component:
    return Component(name, ["worker", "-c", "1", "-n", f"{name}@%h"], env, log_path=tmp_path / f"{name}.log")


def test_a_worker_killed_mid_upload_is_replaced_within_a_minute(redis_url, s3_store, sim, sim_account,
                                                                tmp_path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RECVAULT_")}
    # Only what locates the services: every delivery setting is recvault's default.
    env.update(RECVAULT_BROKER_URL=redis_url, RECVAULT_WORKER_METRICS_PORT="0",
               RECVAULT_S3_ENDPOINT_URL=s3_store.endpoint_url,
               RECVAULT_S3_BUCKET=s3_store.bucket, RECVAULT_TWILIO_AUTH_TOKENS=sim_account.token,
               RECVAULT_TWILIO_API_BASE_URL=sim.base_url, RECVAULT_S3_PART_SIZE_MIB="5", PYTHONUNBUFFERED="1")
    # 600 s of mono WAV is 9.6 MB: two parts, streamed at 2 MB/s, so the upload is under way for seconds.
    rec = sim.create_recording(duration=600, faults=Faults(bytes_per_second=2_000_000))
    first, second = worker("first", env, tmp_path), worker("second", env, tmp_path)
    try:
        first.start(wait=False)
        wait_for(lambda: b" ready." in first.log_path.read_bytes(), timeout=60, what="the first worker")
        app = create_celery(Settings(broker_url=redis_url))
        writer = QueueWriter.for_app(app, "recvault", 60, timeout=2, connect_timeout=2)
        writer.publish(build_message(app, "recvault", f"{rec.sid}:completed",
                                     {"params": callback_params(rec, "completed", api_base=sim.base_url)}))
        wait_for(lambda: s3_store.incomplete_uploads(), timeout=30, what="the first worker's multipart upload")
        first.kill()  # SIGKILL, mid-upload: its worker processes die with it
        killed_at = time.monotonic()
        # Started only now, so the upload cannot finish while the second worker starts up; its
        # start-up counts against the promise.
        second.start(wait=False)
        wait_for(lambda: b" ready." in second.log_path.read_bytes(), timeout=60, what="the second worker")
        [key] = wait_for(lambda: list(s3_store.list_keys("metadata/")), timeout=RECOVERY_SECONDS + 30,
                         what="the recording archived by the second worker")
        recovered = time.monotonic() - killed_at
    finally:
        first.kill()
        second.stop()
    document = json.loads(s3_store.get_bytes(key))
    assert (document["media_size"], document["media_sha256"]) == sim.expected(rec)
    assert recovered < RECOVERY_SECONDS, f"archived {recovered:.1f} s after the kill"
    assert rec.sid.encode() in second.log_path.read_bytes()  # the second worker did it
    print(f"recovered {recovered:.1f} s after SIGKILL")
