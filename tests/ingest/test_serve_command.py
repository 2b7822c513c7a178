"""`recvault serve` as a real process: one or several processes on one port."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import redis

from recvault.launch.process import Component
from recvault.launch.services import free_port
from recvault.simulator.callbacks import CallbackSender, callback_sequence
from recvault.simulator.recordings import SimRecording
from tests.ingest.conftest import ACCOUNT, TOKEN


def _env(redis_url: str, tmp_path) -> dict[str, str]:
    return {**os.environ, "RECVAULT_TWILIO_AUTH_TOKENS": TOKEN, "RECVAULT_BROKER_URL": redis_url,
            "RECVAULT_DATA_DIR": str(tmp_path), "RECVAULT_LOG_LEVEL": "DEBUG"}


@pytest.mark.parametrize("processes", [1, 2])
async def test_serve_queues_callbacks_and_sums_metrics_across_processes(redis_url, tmp_path, processes) -> None:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    server = Component("ingest", ["serve", "--port", str(port), "--processes", str(processes)],
                       _env(redis_url, tmp_path), log_path=tmp_path / "ingest.log", ready_url=f"{base}/healthz")
    plan = [SimRecording(account_sid=ACCOUNT, duration=5) for _ in range(40)]
    with server:
        async with CallbackSender(f"{base}/twilio/recording-status", auth_token=TOKEN, concurrency=16) as sender:
            results = await sender.send_many(
                [sender.prepare(p) for rec in plan for p in callback_sequence(rec, api_base="https://api.twilio.com")])
            metrics = await (await sender._session.get(f"{base}/metrics")).text()
        children = _children(server.pid)
    assert {r.http_status for r in results} == {204}
    assert redis.Redis.from_url(redis_url).llen("recvault") == 80
    assert 'recvault_callbacks_accepted_total{outcome="queued"} 80.0' in metrics
    assert len(children) == (processes if processes > 1 else 0)
    assert not server.running and all(not _alive(pid) for pid in children)  # SIGTERM stopped them all
    log = (tmp_path / "ingest.log").read_text()
    assert TOKEN not in log


def test_serve_without_tokens_names_the_setting(tmp_path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RECVAULT_")}
    result = subprocess.run([sys.executable, "-m", "recvault.cli", "serve", "--port", str(free_port())],
                            env={**env, "RECVAULT_DATA_DIR": str(tmp_path)}, capture_output=True, text=True,
                            timeout=30, cwd=tmp_path)
    assert result.returncode == 2
    assert "RECVAULT_TWILIO_AUTH_TOKENS" in result.stderr and "Traceback" not in result.stderr


def test_bad_setting_is_one_line_naming_the_variable(tmp_path) -> None:
    env = {**os.environ, "RECVAULT_TWILIO_AUTH_TOKENS": "changeme", "RECVAULT_BROKER_URL": "http://nope"}
    result = subprocess.run([sys.executable, "-m", "recvault.cli", "serve"], env=env, capture_output=True,
                            text=True, timeout=30, cwd=tmp_path)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "RECVAULT_TWILIO_AUTH_TOKENS" in result.stderr and "placeholder" in result.stderr
    assert "RECVAULT_BROKER_URL" in result.stderr and "changeme" not in result.stderr


def test_port_in_use_is_a_clear_error(tmp_path, redis_url) -> None:
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = subprocess.run([sys.executable, "-m", "recvault.cli", "serve", "--port", str(port)],
                                env=_env(redis_url, tmp_path), capture_output=True, text=True, timeout=30)
    assert result.returncode == 1
    assert f"cannot listen on 127.0.0.1:{port}" in result.stderr and "Traceback" not in result.stderr


def _children(pid: int) -> list[int]:
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as handle:
            return [int(child) for child in handle.read().split()]
    except FileNotFoundError:
        return []


def _alive(pid: int) -> bool:
    return os.path.exists(f"/proc/{pid}") and "zombie" not in open(f"/proc/{pid}/status").read().lower()
