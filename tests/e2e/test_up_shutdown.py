"""SIGTERM to `recvault up` stops everything it started, as Ctrl-C does: no process left, every port free."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time

import psutil
import pytest

from recvault.launch.services import free_port
from tests.fixtures.worker import wait_for

pytestmark = pytest.mark.system


def _bindable(port: int) -> bool:
    """Whether a server could listen on the port now (as servers do, past connections in TIME_WAIT)."""
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
            sock.listen()
        except OSError:
            return False
    return True


def test_sigterm_stops_every_process_up_started_and_frees_its_ports(tmp_path) -> None:
    ports = {name: free_port() for name in ("ingest", "s3", "simulator", "redis")}
    env = {k: v for k, v in os.environ.items() if not k.startswith("RECVAULT_")}
    # Nothing answers at this broker URL, so `up` starts a redis-server of its own too.
    env.update(RECVAULT_DATA_DIR=str(tmp_path / "data"), RECVAULT_BROKER_URL=f"redis://127.0.0.1:{ports['redis']}/0",
               RECVAULT_LOG_LEVEL="WARNING")
    output = tmp_path / "up.log"
    with output.open("wb") as log:
        up = subprocess.Popen(
            [sys.executable, "-m", "recvault.cli", "up", "--no-demo", "--port", str(ports["ingest"]),
             "--s3-port", str(ports["s3"]), "--sim-port", str(ports["simulator"])],
            env=env, cwd=tmp_path, stdout=log, stderr=subprocess.STDOUT)
    try:
        wait_for(lambda: "recvault is up" in output.read_text() or up.poll() is not None, timeout=120,
                 what="recvault up to start")
        assert up.poll() is None, output.read_text()[-3000:]
        started = psutil.Process(up.pid).children(recursive=True)
        commands = " ".join(" ".join(child.cmdline()) for child in started)
        assert "weed" in commands and "redis-server" in commands
        assert all(word in commands for word in ("serve", "worker", "simulate"))
        assert not any(_bindable(port) for port in ports.values())
        # While it runs it leaves the file other commands read, and no second `up` takes its data dir.
        assert (tmp_path / "data" / "env").exists()
        second = subprocess.run([sys.executable, "-m", "recvault.cli", "up", "--no-demo"], env=env, cwd=tmp_path,
                                capture_output=True, text=True, timeout=60)
        assert second.returncode == 1 and "another `recvault up` is running" in second.stderr, second.stderr
        assert (tmp_path / "data" / "env").exists()

        up.send_signal(signal.SIGTERM)  # what a supervisor sends; a second one must not cut the stop short
        time.sleep(0.3)
        up.send_signal(signal.SIGTERM)
        assert up.wait(60) == 143
    finally:
        if up.poll() is None:
            up.kill()
    gone, alive = psutil.wait_procs(started, timeout=10)
    assert alive == [], [" ".join(p.cmdline()) for p in alive]
    assert [name for name, port in ports.items() if not _bindable(port)] == []
    assert "Traceback" not in output.read_text()
    assert not (tmp_path / "data" / "env").exists()
