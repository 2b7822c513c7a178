"""The local service launchers: free ports, side-by-side instances, restarts that keep data."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import urllib.request
from pathlib import Path

import pytest
import redis

from recvault.errors import StorageRejected
from recvault.launch.services import LaunchError, RedisServer, SeaweedFS, find_binary, free_port
from recvault.storage.s3 import S3Store

REPO = Path(__file__).resolve().parents[2]


def alive(pid: int) -> bool:
    """Whether a process with this id exists."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_free_ports_are_distinct_and_bindable() -> None:
    ports = {free_port() for _ in range(50)}
    assert len(ports) == 50
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", ports.pop()))


@pytest.mark.system  # two more SeaweedFS servers
def test_two_seaweedfs_side_by_side(seaweedfs: SeaweedFS, tmp_path: Path) -> None:
    with SeaweedFS(tmp_path / "second") as second:
        assert set(second.ports.values()).isdisjoint(seaweedfs.ports.values())
        for server in (seaweedfs, second):
            with urllib.request.urlopen(server.s3_url + "/", timeout=5) as answer:
                assert answer.status == 200
        only_here = S3Store("only-on-second", endpoint_url=second.s3_url)
        only_here.ensure_bucket(create=True)
        elsewhere = S3Store("only-on-second", endpoint_url=seaweedfs.s3_url)
        with pytest.raises(StorageRejected, match="RECVAULT_S3_BUCKET"):
            elsewhere.ensure_bucket(create=False)
        pid = second.pid
    assert pid is not None and not alive(pid)
    temp = Path(tempfile.gettempdir())
    assert not [p for port in second.ports.values() for p in temp.glob(f"seaweedfs-*-{port}.sock")]


def test_seaweedfs_stop_is_idempotent(tmp_path: Path) -> None:
    server = SeaweedFS(tmp_path / "weed").start()
    pid = server.pid
    server.stop()
    server.stop()
    server.kill()
    assert server.pid is None and pid is not None and not alive(pid)


def test_seaweedfs_refuses_a_port_already_served(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        server = SeaweedFS(tmp_path / "weed", s3_port=taken.getsockname()[1])
        with pytest.raises(LaunchError, match="already in use"):
            server.start()
    assert not server.running


def test_seaweedfs_failure_shows_its_log(tmp_path: Path) -> None:
    server = SeaweedFS(tmp_path / "weed")
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        busy = taken.getsockname()[1]
        server.ports["master.port"] = busy
        with pytest.raises(LaunchError, match="SeaweedFS exited") as failure:
            server.start()
    assert "weed.log" in str(failure.value)
    assert f"port {busy}" in str(failure.value)  # the log tail, where weed names the busy port
    assert not server.running


def test_missing_weed_names_the_package(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "executable", str(tmp_path / "python"))
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(LaunchError, match=r"pip install 'recvault\[embedded\]'"):
        SeaweedFS(tmp_path / "weed")
    with pytest.raises(LaunchError, match="apt-get install redis-server"):
        RedisServer(tmp_path / "redis")


def test_find_binary_prefers_the_running_venv() -> None:
    beside = Path(sys.executable).parent / "weed"
    if beside.exists():
        assert find_binary("weed", "") == str(beside)
    with pytest.raises(LaunchError, match="hint"):
        find_binary("no-such-binary-anywhere", "hint")


def test_redis_keeps_data_across_stop_and_kill(private_redis: RedisServer) -> None:
    client = redis.Redis.from_url(private_redis.url)
    client.set("recording", "RE1")
    client.close()
    private_redis.stop()
    private_redis.start()
    client = redis.Redis.from_url(private_redis.url)
    assert client.get("recording") == b"RE1"
    client.rpush("queue", "job")
    client.close()
    private_redis.kill()  # appendfsync always: an acknowledged write survives a crash
    private_redis.start()
    client = redis.Redis.from_url(private_redis.url)
    assert (client.get("recording"), client.lrange("queue", 0, -1)) == (b"RE1", [b"job"])
    client.close()


def test_redis_unreachable_while_stopped(private_redis: RedisServer) -> None:
    private_redis.stop()
    client = redis.Redis.from_url(private_redis.url, socket_connect_timeout=1)
    with pytest.raises(redis.ConnectionError):
        client.ping()
    client.close()
    private_redis.start()
    client = redis.Redis.from_url(private_redis.url)
    assert client.ping()
    client.close()


def test_servers_do_not_outlive_their_process(tmp_path: Path) -> None:
    script = (
        "import sys\n"
        "from recvault.launch.services import RedisServer\n"
        "server = RedisServer(sys.argv[1]).start()\n"
        "print(server.pid)\n"
    )
    child = subprocess.run(
        [sys.executable, "-c", script, str(tmp_path / "redis")],
        cwd=REPO, capture_output=True, text=True, timeout=60, check=True,
    )  # fmt: skip
    assert not alive(int(child.stdout))
