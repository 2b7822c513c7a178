"""`recvault worker` on its defaults through a Sentinel failover: the master SIGKILLed and never brought back.

The worker holds tasks when the master dies — one waiting for its ETA (a retry after a 429 with
Retry-After), one downloading slow media — which is what used to stop it (kombu's
"Unrecoverable error", see recvault.queue.kombu_transport). It must go on without restarting a
process, archive what arrives after the promotion, and finish what it held, each once.
"""

from __future__ import annotations

import json
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
from tests.workers.test_worker_start import GOOD_POLICY, _env

pytestmark = pytest.mark.system

# What a message held across the failover may take: its ETA, then kombu's visibility timeout
# (30 s, from its last heartbeat) if the worker's own restore could not run while the broker was away.
HELD_SECONDS = 120


def test_a_worker_keeps_archiving_across_a_sentinel_failover(sentinel_setup, s3_endpoint, sim, sim_account,
                                                              tmp_path) -> None:
    policy = tmp_path / "policy.toml"
    policy.write_text(GOOD_POLICY)
    bucket = "worker-failover"
    options = sentinel_setup.transport_options
    env = _env(sentinel_setup.url, s3_endpoint, sim, sim_account, policy, bucket)
    env["RECVAULT_BROKER_TRANSPORT_OPTIONS"] = json.dumps(options)
    log = tmp_path / "worker.log"
    app = create_celery(Settings(broker_url=sentinel_setup.url, broker_transport_options=options))
    store = S3Store(bucket, endpoint_url=s3_endpoint)

    def enqueue(rec) -> None:
        enqueue_completed(app, rec, sim.base_url, timeout=30, what="the broker to take the message")

    def archived(rec) -> int:
        return archived_count(store, rec.sid)

    worker = Component("worker", ["worker"], env, log_path=log).start(wait=False)  # 2 processes, 24 threads each
    try:
        wait_for(lambda: log.read_bytes().count(b" ready.") >= 2, timeout=90, what="both worker processes")
        processes = sorted(child.pid for child in _workers(psutil.Process(worker.pid)))
        assert len(processes) == 2
        # Held when the master dies: a retry waiting for its ETA, and an archive streaming media
        # (960 kB at 120 kB/s: about 8 s).
        waiting = sim.create_recording(duration=2, faults=Faults(rate_limited=1, retry_after_seconds=15))
        streaming = sim.create_recording(duration=60, faults=Faults(bytes_per_second=120_000))
        enqueue(waiting)
        wait_for(lambda: b"retrying" in log.read_bytes(), timeout=30, what="the retry to be held")
        enqueue(streaming)
        wait_for(lambda: log.read_bytes().count(b"Task recvault.archive_event") >= 4, timeout=30,
                 what="the streaming archive to start")
        time.sleep(1)

        old = sentinel_setup.master
        old.kill()  # SIGKILL; never started again
        sentinel_setup.wait_failover(old.port, timeout=60)
        promoted = time.monotonic()
        fresh = sim.create_recording(duration=1)
        enqueue(fresh)
        wait_for(lambda: archived(fresh), timeout=90, what=f"{fresh.sid} archived after the promotion; "
                 f"worker log:\n{log.read_text()[-3000:]}")
        after_promotion = time.monotonic() - promoted
        wait_for(lambda: archived(streaming), timeout=HELD_SECONDS, what="the archive that streamed across it")
        streamed = time.monotonic() - promoted
        wait_for(lambda: archived(waiting), timeout=HELD_SECONDS, what="the retry held across it")
        retried = time.monotonic() - promoted

        text = log.read_text()
        assert worker.running, f"the worker stopped (exit {worker.process.returncode}):\n{text[-3000:]}"
        assert "Unrecoverable error" not in text
        # No worker process stopped and was started again: both rode the failover out.
        assert sorted(child.pid for child in _workers(psutil.Process(worker.pid))) == processes
        assert "worker process stopped" not in text
        # The archive that streamed across it acknowledged through the closed channel's pool.
        assert "Couldn't ack" not in text
        assert [archived(rec) for rec in (waiting, streaming, fresh)] == [1, 1, 1]
        print(f"failover: next archive {after_promotion:.1f} s after the promotion; held archives done "
              f"{streamed:.1f} s (streaming) and {retried:.1f} s (retry) after it")
    finally:
        worker.stop()

