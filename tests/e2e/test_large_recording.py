"""A recording over 1 GiB archives through a real worker process in bounded memory."""

from __future__ import annotations

import json
import os
import time

import pytest

from bench.rss import TreeSampler
from recvault.launch.process import Component
from recvault.launch.services import free_port
from recvault.queue.celery_factory import ARCHIVE_TASK, create_celery
from recvault.settings import Settings
from tests.fixtures.worker import wait_for

GIB = 1 << 30
# Worker memory must not grow with the recording: parts of 8 MiB, two in flight.
RSS_LIMIT = 150 * 1024 * 1024
# The whole default worker: the supervising process and its two worker processes.
TREE_LIMIT = 400 * 1024 * 1024


@pytest.mark.system
def test_a_recording_over_1_gib_archives_with_worker_rss_far_below_its_size(
        redis_url, tmp_path, sim, sim_account, s3_store) -> None:
    duration = GIB // 16000 + 1  # mono 8 kHz 16-bit: 16,000 bytes a second
    rec = sim.create_recording(channels=1, duration=duration)
    size, sha256 = sim.expected(rec, "wav")
    assert size > GIB
    env = {**os.environ, "RECVAULT_BROKER_URL": redis_url, "RECVAULT_TWILIO_AUTH_TOKENS": sim_account.token,
           "RECVAULT_TWILIO_API_BASE_URL": sim.base_url, "RECVAULT_S3_BUCKET": s3_store.bucket,
           "RECVAULT_S3_ENDPOINT_URL": s3_store.endpoint_url, "RECVAULT_DATA_DIR": str(tmp_path),
           "RECVAULT_WORKER_METRICS_PORT": "0", "RECVAULT_QUEUE": f"large-{free_port()}"}
    settings = Settings(_env_file=None, broker_url=redis_url, queue=env["RECVAULT_QUEUE"])
    # The shipped default worker (two threads processes of 24): RSS is bounded at any size by default.
    worker = Component("worker", ["worker"], env, log_path=tmp_path / "worker.log")
    url = sim.recording_url(rec)
    payload = {"params": {"AccountSid": rec.account_sid, "RecordingSid": rec.sid, "RecordingUrl": url,
                          "RecordingStatus": "completed", "RecordingDuration": str(duration),
                          "RecordingChannels": "1"}, "received_at": "2026-11-24T00:00:00+00:00"}
    with worker, TreeSampler(worker.start().pid) as rss:
        started = time.monotonic()
        create_celery(settings).send_task(ARCHIVE_TASK, args=(payload,), queue=settings.queue)
        key = wait_for(lambda: next(iter(s3_store.list_keys("metadata/")), None), timeout=600,
                       interval=0.5, what="the 1 GiB recording's document")
        elapsed = time.monotonic() - started
    document = json.loads(s3_store.get_bytes(key))
    assert document["media_size"] == size and document["media_sha256"] == sha256
    print(f"\n1 GiB+ archive: {size / 1e6:.0f} MB in {elapsed:.1f} s ({size / 1e6 / elapsed:.0f} MB/s); "
          f"worker peak RSS {max(rss.peaks.values()) / 1e6:.0f} MB per process, {rss.tree_peak / 1e6:.0f} MB tree")
    assert max(rss.peaks.values()) < RSS_LIMIT, f"a worker process reached {max(rss.peaks.values()) / 1e6:.0f} MB"
    assert rss.tree_peak < TREE_LIMIT, f"the worker's processes reached {rss.tree_peak / 1e6:.0f} MB together"
