"""Large media streams through the real server in constant memory, byte-exact."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import threading
import time
import tracemalloc
from pathlib import Path

import psutil
import pytest
import requests

from recvault.simulator.media import media_sha256
from recvault.simulator.recordings import new_sid
from recvault.simulator.server import SimServer
from tests.simulator.support import free_port, wait_until_up

MiB = 1 << 20


def download_sha256(url: str, auth: tuple[str, str]) -> tuple[int, int, str]:
    """(Content-Length, bytes received, sha256) of a streamed download."""
    digest, received = hashlib.sha256(), 0
    with requests.get(url, auth=auth, stream=True, timeout=60) as response:
        response.raise_for_status()
        for chunk in response.iter_content(MiB):
            digest.update(chunk)
            received += len(chunk)
        return int(response.headers["Content-Length"]), received, digest.hexdigest()


def test_50_mb_stream_is_exact_and_never_held_in_memory(sim: SimServer, sim_api_key) -> None:
    rec = sim.create_recording(channels=2, duration=1562)  # 49,984,044 bytes of WAV
    size, digest = sim.expected(rec)
    tracemalloc.start()
    try:
        announced, received, got = download_sha256(
            sim.recording_url(rec) + ".wav", (sim_api_key.sid, sim_api_key.secret))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert announced == received == size > 49 * 1_000_000
    assert got == digest
    assert peak < 16 * MiB, f"peak {peak / MiB:.1f} MiB while streaming {size / MiB:.0f} MiB"


@pytest.mark.system
def test_1_gb_stream_from_the_serve_command_in_constant_memory(tmp_path: Path) -> None:
    """`recvault simulate serve` in its own process: its RSS must not grow with the download."""
    account, token = new_sid("AC"), "tok-" + new_sid("")
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("RECVAULT_")}
    env.update(RECVAULT_TWILIO_ACCOUNT_SID=account, RECVAULT_TWILIO_AUTH_TOKENS=token)
    child = subprocess.Popen([sys.executable, "-m", "recvault.cli", "simulate", "serve", "--port", str(port)],
                             env=env, cwd=tmp_path, stderr=subprocess.PIPE, text=True)
    try:
        base = f"http://127.0.0.1:{port}"
        wait_until_up(base)
        created = requests.post(f"{base}/_sim/recordings", json={"channels": 2, "duration": 31250}, timeout=10)
        sid = created.json()["resource"]["sid"]
        process = psutil.Process(child.pid)
        baseline, peak, stop = process.memory_info().rss, [0], threading.Event()

        def sample() -> None:
            while not stop.is_set():
                peak[0] = max(peak[0], process.memory_info().rss)
                time.sleep(0.05)

        sampler = threading.Thread(target=sample)
        sampler.start()
        try:
            url = f"{base}/2010-04-01/Accounts/{account}/Recordings/{sid}.wav"
            announced, received, got = download_sha256(url, (account, token))
        finally:
            stop.set()
            sampler.join()
        assert announced == received == 1_000_000_044
        assert got == media_sha256(sid, "wav", 2, 31250)
        assert peak[0] - baseline < 48 * MiB, f"server RSS grew {(peak[0] - baseline) / MiB:.0f} MiB"
    finally:
        child.terminate()
        _, stderr = child.communicate(timeout=30)
    assert token not in stderr
