"""`recvault worker` builds its context at start: a bad policy stops it; a later failure never loses an event."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import boto3
import psutil
import pytest
import redis

from recvault.launch.process import Component
from recvault.launch.services import free_port
from recvault.queue.celery_factory import create_celery
from recvault.queue.writer import QueueWriter, build_message
from recvault.settings import Settings
from recvault.simulator.callbacks import callback_params
from recvault.workers.dead_letters import DLQ_KEY
from tests.fixtures.worker import wait_for

GOOD_POLICY = '[default]\nretention_days = 1\nmode = "GOVERNANCE"\n'
# A tag key S3 refuses ("aws:" is reserved) in a rule with a name the error must repeat.
BROKEN_POLICY = GOOD_POLICY + '[[rule]]\nname = "finance-7y"\nsource = ["DialVerb"]\ntags = { "aws:team" = "x" }\n'


def _env(redis_url: str, s3_endpoint: str, sim, sim_account, policy: Path, bucket: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RECVAULT_")}
    env.update(RECVAULT_BROKER_URL=redis_url, RECVAULT_WORKER_METRICS_PORT="0", RECVAULT_S3_ENDPOINT_URL=s3_endpoint,
               RECVAULT_S3_CREATE_BUCKET="true", RECVAULT_S3_BUCKET=bucket,
               RECVAULT_TWILIO_AUTH_TOKENS=sim_account.token, RECVAULT_TWILIO_API_BASE_URL=sim.base_url,
               RECVAULT_POLICY_FILE=str(policy), RECVAULT_LOG_FORMAT="text", PYTHONUNBUFFERED="1")
    return env


def test_a_worker_with_a_broken_policy_exits_at_start_naming_the_rule(redis_url, s3_endpoint, sim, sim_account,
                                                                       tmp_path) -> None:
    policy = tmp_path / "policy.toml"
    policy.write_text(BROKEN_POLICY)
    env = _env(redis_url, s3_endpoint, sim, sim_account, policy, "worker-bad-policy")
    result = subprocess.run([sys.executable, "-m", "recvault.cli", "worker", "-c", "1"], env=env,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 2, result.stderr[-2000:]
    assert "finance-7y" in result.stderr and "aws:" in result.stderr
    assert "Traceback" not in result.stderr
    # It stopped before consuming: nothing was taken off any queue.
    assert redis.Redis.from_url(redis_url).hlen("unacked") == 0


@pytest.mark.system  # real worker processes, a pool child killed
def test_a_context_that_fails_after_start_dead_letters_instead_of_losing_the_event(
        redis_url, s3_endpoint, sim, sim_account, tmp_path) -> None:
    policy = tmp_path / "policy.toml"
    policy.write_text(GOOD_POLICY)
    log = tmp_path / "worker.log"
    env = _env(redis_url, s3_endpoint, sim, sim_account, policy, "worker-late-failure")
    # Pool children build their own context only in a prefork worker (still supported).
    worker = Component("worker", ["worker", "--pool", "prefork", "-c", "1"], env, log_path=log).start(wait=False)
    try:
        wait_for(lambda: b' ready.' in log.read_bytes(), timeout=60, what="the worker to start")
        main = psutil.Process(worker.pid)
        [child] = main.children()
        # The policy breaks while the worker runs; the pool child dies (an OOM kill) and its
        # replacement builds its context from the broken file.
        policy.write_text(BROKEN_POLICY)
        os.kill(child.pid, signal.SIGKILL)
        wait_for(lambda: [c for c in main.children() if c.pid != child.pid], timeout=30,
                 what="the pool to replace its child")
        wait_for(lambda: b"worker context failed to build" in log.read_bytes(), timeout=30,
                 what="the new child to report its context failure")

        rec = sim.create_recording(duration=2, source="DialVerb")
        app = create_celery(Settings(broker_url=redis_url))
        message = build_message(app, "recvault", f"{rec.sid}:completed",
                                {"params": callback_params(rec, "completed", api_base=sim.base_url)})
        writer = QueueWriter.for_app(app, "recvault", 60, timeout=2, connect_timeout=2)
        assert writer.enqueue([message]) == [True]
        writer.close()

        client = redis.Redis.from_url(redis_url)
        raw = wait_for(lambda: client.hget(DLQ_KEY, f"{rec.sid}:completed"), timeout=30,
                       what="the event to be dead-lettered")
        letter = json.loads(raw)
        assert letter["error"] == "ConfigurationError"
        assert "finance-7y" in letter["reason"]
        assert letter["payload"]["params"]["RecordingSid"] == rec.sid
        # Acknowledged only once recorded: nothing left waiting or unacknowledged.
        wait_for(lambda: client.hlen("unacked") == 0, timeout=10, what="the message to be acknowledged")
        assert client.llen("recvault") == 0
    finally:
        worker.stop()


def _plain_bucket(s3_endpoint: str, name: str) -> None:
    """A bucket created the ordinary way: versioning and Object Lock off."""
    boto3.client("s3", endpoint_url=s3_endpoint, region_name="us-east-1", aws_access_key_id="any",
                 aws_secret_access_key="any").create_bucket(Bucket=name)


@pytest.mark.system  # real worker processes
def test_a_bucket_without_object_lock_stops_a_worker_whose_policy_locks(redis_url, s3_endpoint, sim, sim_account,
                                                                         tmp_path) -> None:
    bucket = f"plain-{uuid.uuid4().hex[:12]}"
    _plain_bucket(s3_endpoint, bucket)
    policy = tmp_path / "policy.toml"
    policy.write_text(GOOD_POLICY)
    env = _env(redis_url, s3_endpoint, sim, sim_account, policy, bucket)
    env["RECVAULT_S3_CREATE_BUCKET"] = "false"
    result = subprocess.run([sys.executable, "-m", "recvault.cli", "worker", "-c", "1"], env=env,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 2, result.stderr[-2000:]
    assert "RECVAULT_S3_BUCKET" in result.stderr and "no Object Lock" in result.stderr
    assert "'default'" in result.stderr and "Traceback" not in result.stderr


@pytest.mark.system  # real worker processes
def test_without_retention_in_the_policy_a_plain_bucket_is_fine(redis_url, s3_endpoint, sim, sim_account,
                                                               tmp_path) -> None:
    bucket = f"plain-{uuid.uuid4().hex[:12]}"
    _plain_bucket(s3_endpoint, bucket)
    policy = tmp_path / "policy.toml"
    policy.write_text('[default]\nmode = "none"\n')
    log = tmp_path / "worker.log"
    env = _env(redis_url, s3_endpoint, sim, sim_account, policy, bucket)
    env["RECVAULT_S3_CREATE_BUCKET"] = "false"
    worker = Component("worker", ["worker", "-c", "1"], env, log_path=log).start(wait=False)
    try:
        wait_for(lambda: b" ready." in log.read_bytes() or not worker.running, timeout=60, what="the worker")
        assert worker.running, log.read_text()[-2000:]
    finally:
        worker.stop()


@pytest.mark.system  # real worker processes
def test_a_missing_bucket_is_one_line_not_a_traceback(redis_url, s3_endpoint, sim, sim_account, tmp_path) -> None:
    policy = tmp_path / "policy.toml"
    policy.write_text(GOOD_POLICY)
    env = _env(redis_url, s3_endpoint, sim, sim_account, policy, f"missing-{uuid.uuid4().hex[:12]}")
    env["RECVAULT_S3_CREATE_BUCKET"] = "false"
    result = subprocess.run([sys.executable, "-m", "recvault.cli", "worker", "-c", "1"], env=env,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 1
    assert "does not exist" in result.stderr and "Traceback" not in result.stderr


def _start_refused(env: dict[str, str], within: float) -> tuple[int, list[str], float]:
    """`recvault worker` (its defaults: a group of two processes) refusing to start: status, output lines, seconds."""
    started = time.monotonic()
    result = subprocess.run([sys.executable, "-m", "recvault.cli", "worker"], env=env, capture_output=True,
                            text=True, timeout=within + 60)
    lines = [line for line in (result.stdout + result.stderr).splitlines() if line.strip()]
    return result.returncode, lines, time.monotonic() - started


def test_a_broker_out_of_reach_at_start_is_one_line_naming_it_after_a_bounded_wait(s3_endpoint, sim, sim_account,
                                                                                  tmp_path) -> None:
    policy = tmp_path / "policy.toml"
    policy.write_text(GOOD_POLICY)
    closed = free_port()
    env = _env(f"redis://127.0.0.1:{closed}/0", s3_endpoint, sim, sim_account, policy, "worker-no-broker")
    env["RECVAULT_BROKER_START_TIMEOUT_SECONDS"] = "3"
    code, lines, seconds = _start_refused(env, within=3)
    assert code == 1 and len(lines) == 1, lines  # not a line per retry, nor one per worker process
    [line] = lines
    assert line.startswith(f"recvault: worker: RECVAULT_BROKER_URL: the broker (127.0.0.1:{closed}) did not answer "
                           "within 3 s (RECVAULT_BROKER_START_TIMEOUT_SECONDS): "), line
    assert 3 <= seconds < 3 + 30, seconds
    print(f"refused after {seconds:.1f} s: {line}")


def test_s3_out_of_reach_at_start_is_one_line_naming_it(redis_url, sim, sim_account, tmp_path) -> None:
    policy = tmp_path / "policy.toml"
    policy.write_text(GOOD_POLICY)
    endpoint = f"http://127.0.0.1:{free_port()}"
    env = _env(redis_url, endpoint, sim, sim_account, policy, "worker-no-s3")
    code, lines, seconds = _start_refused(env, within=30)
    assert code == 1 and len(lines) == 1, lines
    [line] = lines
    assert line.startswith(f"recvault: worker: RECVAULT_S3_ENDPOINT_URL: S3 at {endpoint} is unavailable at "
                           "start ("), line
    assert "Traceback" not in line and seconds < 30, seconds
    print(f"refused after {seconds:.1f} s: {line}")
