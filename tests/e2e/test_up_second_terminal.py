"""`recvault up` in one terminal, the operator's commands in another: each works as `up` prints it.

`up` runs in a folder of its own as a real process, with no broker configured; the commands
run there as real processes with no RECVAULT_ variable at all, finding the running services
through the file `up` leaves in its data directory. A second `up` in the same folder then
shows the recordings it sent itself, not the first run's.
"""

from __future__ import annotations

import os
import re
import shlex
import signal
import stat
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import psutil
import pytest
import redis

from recvault.launch.services import RedisServer, free_port
from recvault.settings import UP_ENV_FILE, Settings
from tests.fixtures.worker import wait_for

pytestmark = pytest.mark.system

# Bounds of every wait: `up` starting (SeaweedFS, redis-server, ingest, two worker processes,
# beat) and archiving the demo; one command of the second terminal.
UP_SECONDS = 240
COMMAND_SECONDS = 60
_SID = re.compile(r"RE[0-9a-f]{32}")


def clean_environment() -> dict[str, str]:
    """This process's environment without any RECVAULT_ variable (nor AWS credentials)."""
    return {k: v for k, v in os.environ.items()
            if not k.startswith(("RECVAULT_", "AWS_"))}


def up_environment() -> dict[str, str]:
    # The metrics port is the only setting given: parallel test runs would share the default.
    return {**clean_environment(), "RECVAULT_WORKER_METRICS_PORT": "0", "RECVAULT_LOG_LEVEL": "WARNING"}


def up_command(*flags: str) -> list[str]:
    ports = [str(free_port()) for _ in range(3)]
    return [sys.executable, "-m", "recvault.cli", "up", "--port", ports[0], "--s3-port", ports[1],
            "--sim-port", ports[2], *flags]


def recvault(folder: Path, argv: list[str]) -> subprocess.CompletedProcess[str]:
    """`recvault …` in `folder` as a user would type it in a new terminal there."""
    return subprocess.run([sys.executable, "-m", "recvault.cli", *argv], cwd=folder, env=clean_environment(),
                          capture_output=True, text=True, timeout=COMMAND_SECONDS)


def printed_commands(output: str) -> list[list[str]]:
    """The `recvault …` lines of the summary's "in another terminal" block, as argv lists."""
    block = output.split("in another terminal", 1)[1]
    return [shlex.split(line.strip())[1:] for line in block.splitlines() if line.startswith("  recvault ")]


def own_redis(up: subprocess.Popen[bytes], data: Path) -> tuple[int, Path]:
    """(port, directory) of the redis-server `up` started (it runs in its data directory)."""
    for child in psutil.Process(up.pid).children(recursive=True):
        if child.name() == "redis-server":
            ports = {address.laddr.port for address in child.net_connections("tcp")
                     if address.status == psutil.CONN_LISTEN}
            assert len(ports) == 1, ports
            return ports.pop(), Path(child.cwd())
    raise AssertionError(f"`up` started no redis-server; data dir {data}")


def stop(up: subprocess.Popen[bytes]) -> int:
    """Stop `up` as a supervisor would (SIGTERM: it stops its children); the exit status."""
    if up.poll() is None:
        up.send_signal(signal.SIGTERM)
        try:
            return up.wait(60)
        except subprocess.TimeoutExpired:
            up.kill()
    return up.wait(10)


def env_file_values(path: Path) -> dict[str, str]:
    """What a shell that sources the file exports."""
    shown = subprocess.run(["bash", "-c", f"set -e; source {shlex.quote(str(path))}; env -0"],
                           env={"PATH": os.environ["PATH"]}, capture_output=True, text=True, timeout=30, check=True)
    return dict(item.split("=", 1) for item in shown.stdout.split("\0") if "=" in item)


def test_the_second_terminal_works_as_printed_and_a_second_up_waits_for_its_own(tmp_path: Path) -> None:
    folder = tmp_path / "project"
    folder.mkdir()
    data = folder / ".recvault"
    env_file = data / UP_ENV_FILE
    # Another Redis on this machine, as a user's own would be: `up` must leave it alone.
    decoy = RedisServer(tmp_path / "decoy").start()
    output = folder / "up.out"
    try:
        with output.open("wb") as log:
            up = subprocess.Popen(up_command(), cwd=folder, env=up_environment(), stdout=log,
                                  stderr=subprocess.STDOUT)
        try:
            wait_for(lambda: "Ctrl-C stops everything" in output.read_text() or up.poll() is not None,
                     timeout=UP_SECONDS, interval=0.5, what="recvault up to archive its demo")
            printed = output.read_text()
            assert up.poll() is None, printed[-4000:]
            sids = _SID.findall(printed.split("sent 6 callbacks")[0])
            assert len(set(sids)) == 3, printed

            # The file: private, and naming up's own redis-server, never one on the default port.
            assert stat.S_IMODE(env_file.stat().st_mode) == 0o600
            exported = env_file_values(env_file)
            port, directory = own_redis(up, data)
            assert directory == data / "redis"
            assert exported["RECVAULT_BROKER_URL"] == f"redis://127.0.0.1:{port}/0"
            assert port not in (6379, decoy.port)
            decoy_client = redis.Redis(port=decoy.port)
            assert decoy_client.dbsize() == 0
            decoy_client.close()
            for name in ("RECVAULT_S3_ENDPOINT_URL", "RECVAULT_S3_BUCKET", "RECVAULT_TWILIO_ACCOUNT_SID",
                         "RECVAULT_TWILIO_AUTH_TOKENS", "RECVAULT_TWILIO_API_BASE_URL", "RECVAULT_API_TOKEN",
                         "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_ENDPOINT_URL_S3"):
                assert exported.get(name), name
            # Every RECVAULT_ name in it is a setting (nothing for recvault to warn about).
            assert {n for n in exported if n.startswith("RECVAULT_")} <= {
                f"RECVAULT_{field.upper()}" for field in Settings.model_fields}
            assert f"source {env_file}" in printed

            # The second terminal: every command exactly as printed.
            today = datetime.now(UTC).date().isoformat()
            commands = printed_commands(printed)
            assert [argv[:2] for argv in commands] == [
                ["audit", "verify"], ["hold", "list"], ["dlq", "list"], ["reconcile", "--from"],
                ["audit", "show"], ["policy", "explain"]], printed
            results = {" ".join(argv[:2]): (argv, recvault(folder, argv)) for argv in commands}
            for name, (argv, result) in results.items():
                assert result.returncode == 0, f"recvault {' '.join(argv)}:\n{result.stdout}\n{result.stderr}"
                assert "Traceback" not in result.stderr and "NoCredentialsError" not in result.stderr, name

            verified = results["audit verify"][1].stderr
            accounted = re.search(r"(\d+) of (\d+) accepted completed callback\(s\) accounted for", verified)
            assert accounted is not None, verified
            assert int(accounted[1]) == int(accounted[2]) >= 3, verified
            assert "0 discrepancy(ies)" in verified

            argv, reconciled = results["reconcile --from"]
            assert argv == ["reconcile", "--from", today, "--to", today]
            assert re.search(r"3 listed at Twilio .* 3 archived, 0 missing", reconciled.stdout), reconciled.stdout

            listed = results["dlq list"][1]
            assert not _SID.search(listed.stdout) and "not read" not in listed.stderr, listed.stdout + listed.stderr
            assert "error" not in results["hold list"][1].stderr.lower()

            shown_sid = results["audit show"][0][2]
            assert shown_sid in sids
            assert "archived" in results["audit show"][1].stdout
            assert f"recording {shown_sid}" in results["policy explain"][1].stdout

            # Not printed (it may erase), but it reaches the archive all the same: the demo's
            # recordings are under retention, so it is refused and says until when.
            erase = recvault(folder, ["erase", sids[0], "--reason", "request 42"])
            assert erase.returncode == 1 and f"refused {sids[0]}" in erase.stderr, erase.stderr

            assert stop(up) == 143
        finally:
            stop(up)
        # Stopped: the file naming its services is gone with them.
        assert not env_file.exists()

        # A second `up` in the same folder shows and waits for the recordings it sent itself.
        again = subprocess.run(up_command("--demo-only"), cwd=folder, env=up_environment(),
                               capture_output=True, text=True, timeout=UP_SECONDS)
        assert again.returncode == 0, again.stdout[-3000:] + again.stderr[-3000:]
        sent, archived = again.stdout.split("sent 6 callbacks", 1)
        second = _SID.findall(sent)
        assert len(set(second)) == 3 and not set(second) & set(sids)
        shown = re.findall(r"media/date=\S+/(RE[0-9a-f]{32})\.wav", archived)
        assert sorted(shown) == sorted(second), again.stdout
        assert set(_SID.findall(archived.split("status page and API")[0])) == set(second)
        assert "6 accepted row(s) flushed" in again.stdout
        listed_now = re.search(r"status page and API: (\d+) recording\(s\) listed", again.stdout)
        assert listed_now is not None and int(listed_now[1]) == 6, again.stdout
    finally:
        decoy.stop()
