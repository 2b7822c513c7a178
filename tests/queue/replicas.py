"""A real redis-server master (AOF on) with one replica, without Sentinel: for tests of WAIT and held copies."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import redis

from recvault.launch.services import LaunchError, RedisServer


class MasterAndReplica:
    """A master and its replica; the replica can be lost and brought back, the master restarted."""

    def __init__(self, directory: Path) -> None:
        self.master = RedisServer(directory / "master")
        self.replica = RedisServer(directory / "replica", replica_of=self.master.port)

    def start(self) -> MasterAndReplica:
        self.master.start()
        self.replica.start()
        self.wait_linked()
        return self

    def stop(self) -> None:
        for server in (self.replica, self.master):
            server.stop(timeout=10)

    @property
    def url(self) -> str:
        return f"{self.master.url}/0"

    def client(self, server: RedisServer | None = None) -> redis.Redis:
        return redis.Redis(port=(server or self.master).port, socket_timeout=5, socket_connect_timeout=2)

    def lose_replica(self) -> None:
        """SIGKILL the replica and wait until the master no longer counts it online."""
        self.replica.kill()
        self._wait(lambda: self._online() == 0, "the master to see its replica gone")

    def bring_back_replica(self) -> None:
        self.replica.start()
        self.wait_linked()

    def wait_linked(self, timeout: float = 30) -> None:
        """Until the replica is in sync and the master counts it online."""
        def linked() -> bool:
            with self.client(self.replica) as replica:
                return replica.info("replication").get("master_link_status") == "up" and self._online() == 1

        self._wait(linked, "the replica to sync", timeout)

    def _online(self) -> int:
        with self.client() as master:
            info = master.info("replication")
        return sum(1 for key, value in info.items()
                   if key.startswith("slave") and isinstance(value, dict) and value.get("state") == "online")

    @staticmethod
    def _wait(condition: Callable[[], bool], what: str, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                if condition():
                    return
            except redis.RedisError:
                pass
            time.sleep(0.05)
        raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


@contextmanager
def master_and_replica(directory: Path) -> Iterator[MasterAndReplica]:
    """A started master and replica, stopped on exit; the test fails if they cannot start."""
    pair = MasterAndReplica(directory)
    try:
        pair.start()
    except (LaunchError, AssertionError) as error:
        pair.stop()
        pytest.fail(f"a master with a replica is required for this test and did not start: {error}")
    try:
        yield pair
    finally:
        pair.stop()
