"""A broker reached over TLS, end to end: real `recvault serve` and `recvault worker` processes archive a
recording the simulator's signed callbacks announce, over `rediss://` to a TLS-only redis-server, and over
Sentinel with TLS on every port (sentinels, master, replica). A CA that did not sign the broker's certificate
stops both commands at start with one line naming the setting to fix."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from prometheus_client.parser import text_string_to_metric_families

from recvault.launch.process import Component
from recvault.launch.services import free_port
from recvault.simulator.callbacks import CallbackSender, callback_sequence
from recvault.simulator.server import SimServer
from recvault.storage.s3 import S3Store
from tests.fixtures.sentinel import TlsSentinelSetup
from tests.fixtures.simulator import SimAccount
from tests.fixtures.tls_redis import TlsRedisServer, make_ca
from tests.fixtures.worker import wait_for

# Two recvault processes, a simulator and a TLS broker per scenario: the system tier.
pytestmark = pytest.mark.system

# Generous bounds for a shared two-core machine; each scenario takes seconds when it works.
READY_SECONDS = 90
ARCHIVED_SECONDS = 90
# A refused start takes about a second (the interpreter, one TLS handshake); an endless retry never ends.
REFUSAL_SECONDS = 60


def environment(broker_url: str, transport_options: dict[str, Any], s3_store: S3Store, sim: SimServer,
                sim_account: SimAccount, data_dir: Path) -> dict[str, str]:
    """What every recvault process of a scenario runs with: the broker, S3 and the simulated Twilio."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("RECVAULT_")}
    env.update(RECVAULT_BROKER_URL=broker_url, RECVAULT_BROKER_TRANSPORT_OPTIONS=json.dumps(transport_options),
               RECVAULT_S3_ENDPOINT_URL=s3_store.endpoint_url, RECVAULT_S3_BUCKET=s3_store.bucket,
               RECVAULT_TWILIO_AUTH_TOKENS=sim_account.token, RECVAULT_TWILIO_API_BASE_URL=sim.base_url,
               RECVAULT_DATA_DIR=str(data_dir), RECVAULT_WORKER_METRICS_PORT="0", RECVAULT_LOG_FORMAT="text",
               PYTHONUNBUFFERED="1")
    return env


def sample(exposition: str, name: str) -> float | None:
    """One unlabelled sample of a Prometheus exposition, None when absent."""
    for family in text_string_to_metric_families(exposition):
        for found in family.samples:
            if found.name == name and not found.labels:
                return found.value
    return None


async def archive_through(env: dict[str, str], sim: SimServer, sim_account: SimAccount, s3_store: S3Store,
                          logs: Path) -> dict[str, Any]:
    """Start ingest and a worker, send one recording's signed callbacks, wait for its archive; the metadata."""
    port = free_port()
    ingest = Component("ingest", ["serve", "--port", str(port)], env, log_path=logs / "ingest.log",
                       ready_url=f"http://127.0.0.1:{port}/healthz")
    worker = Component("worker", ["worker", "--processes", "1", "-c", "2"], env, log_path=logs / "worker.log")
    rec = sim.create_recording(duration=3)
    try:
        await asyncio.to_thread(ingest.start, timeout=READY_SECONDS)
        worker.start(wait=False)
        await asyncio.to_thread(wait_for, lambda: b" ready." in (logs / "worker.log").read_bytes(),
                                timeout=READY_SECONDS, what="the worker to consume")
        async with CallbackSender(f"http://127.0.0.1:{port}/twilio/recording-status",
                                  auth_token=sim_account.token) as sender:
            sent = await sender.send_many([sender.prepare(params)
                                           for params in callback_sequence(rec, api_base=sim.base_url)])
        assert {result.http_status for result in sent} == {204}
        [key] = await asyncio.to_thread(wait_for, lambda: list(s3_store.list_keys("metadata/")),
                                        timeout=ARCHIVED_SECONDS, what="the recording archived")
        async with aiohttp.ClientSession() as session, session.get(f"http://127.0.0.1:{port}/metrics") as answer:
            metrics = await answer.text()
    finally:
        await asyncio.to_thread(worker.stop, 30)
        await asyncio.to_thread(ingest.stop, 30)
    # Ingest's last write reached the broker, and nothing waits in its spool.
    assert sample(metrics, "recvault_broker_up") == 1
    assert sample(metrics, "recvault_spool_depth") == 0
    document = json.loads(s3_store.get_bytes(key))
    assert (document["media_size"], document["media_sha256"]) == sim.expected(rec)
    assert rec.sid.encode() in (logs / "worker.log").read_bytes()
    return document


def refusal(argv: list[str], env: dict[str, str]) -> tuple[int, list[str], float]:
    """Run `recvault <argv>` to its end: exit status, the lines it wrote (stdout and stderr), seconds taken."""
    started = time.monotonic()
    try:
        done = subprocess.run([sys.executable, "-m", "recvault.cli", *argv], env=env, capture_output=True,
                              text=True, timeout=REFUSAL_SECONDS)
    except subprocess.TimeoutExpired as timed_out:
        output = timed_out.stderr or b""  # bytes, even with text=True
        written = output.decode(errors="replace") if isinstance(output, bytes) else output
        pytest.fail(f"`recvault {argv[0]}` was still running after {REFUSAL_SECONDS} s; it wrote:\n{written[-2000:]}")
    return done.returncode, (done.stdout + done.stderr).splitlines(), time.monotonic() - started


def assert_refused_at_start(env: dict[str, str], variable: str, *words: str) -> None:
    """`recvault serve` and `recvault worker` both exit 2 at once, with one line naming `variable`."""
    for argv in (["serve", "--port", str(free_port())], ["worker"]):
        code, lines, seconds = refusal(argv, env)
        assert code == 2 and len(lines) == 1, f"recvault {argv[0]}: exit {code}, wrote:\n" + "\n".join(lines)
        [line] = lines
        assert line.startswith(f"recvault: configuration error: {variable}: "), line
        assert all(word in line for word in words), line
        print(f"recvault {argv[0]} refused in {seconds:.1f} s: {line}")


async def test_rediss_archives_end_to_end(tls_redis: TlsRedisServer, s3_store: S3Store, sim: SimServer,
                                          sim_account: SimAccount, tmp_path: Path) -> None:
    url = f"{tls_redis.url}/0?ssl_ca_certs={tls_redis.certificates.ca}"
    env = environment(url, {}, s3_store, sim, sim_account, tmp_path / "data")
    await archive_through(env, sim, sim_account, s3_store, tmp_path / "logs")


async def test_sentinel_with_tls_archives_end_to_end(tls_sentinel_setup: TlsSentinelSetup, s3_store: S3Store,
                                                     sim: SimServer, sim_account: SimAccount,
                                                     tmp_path: Path) -> None:
    # The first sentinel:// URL's query says how the master is reached, sentinel_kwargs how the sentinels are.
    env = environment(tls_sentinel_setup.url, tls_sentinel_setup.transport_options, s3_store, sim, sim_account,
                      tmp_path / "data")
    await archive_through(env, sim, sim_account, s3_store, tmp_path / "logs")


def test_a_wrong_ca_for_rediss_stops_serve_and_worker_at_start(tls_redis: TlsRedisServer, s3_store: S3Store,
                                                               sim: SimServer, sim_account: SimAccount,
                                                               tmp_path: Path) -> None:
    wrong, _ = make_ca(tmp_path / "other-ca")
    env = environment(f"{tls_redis.url}/0?ssl_ca_certs={wrong}", {}, s3_store, sim, sim_account, tmp_path / "data")
    assert_refused_at_start(env, "RECVAULT_BROKER_URL", "did not verify", str(wrong))


def test_a_wrong_ca_for_sentinel_tls_stops_serve_and_worker_at_start(tls_sentinel_setup: TlsSentinelSetup,
                                                                     s3_store: S3Store, sim: SimServer,
                                                                     sim_account: SimAccount,
                                                                     tmp_path: Path) -> None:
    setup, right = tls_sentinel_setup, str(tls_sentinel_setup.tls.ca)
    wrong, _ = make_ca(tmp_path / "other-ca")
    # The sentinels' certificates checked against another CA: sentinel_kwargs is what to fix.
    options = {**setup.transport_options, "sentinel_kwargs": setup.sentinel_kwargs(wrong)}
    env = environment(setup.url, options, s3_store, sim, sim_account, tmp_path / "data")
    assert_refused_at_start(env, "RECVAULT_BROKER_TRANSPORT_OPTIONS", "sentinel", "did not verify", str(wrong))
    # The sentinels verified, the master's certificate checked against another CA: the URL's query is.
    env = environment(setup.url.replace(right, str(wrong)), setup.transport_options, s3_store, sim, sim_account,
                      tmp_path / "data")
    assert_refused_at_start(env, "RECVAULT_BROKER_URL", "master", "did not verify", str(wrong))
