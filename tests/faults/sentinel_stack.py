"""The fault suite's stack with a Sentinel-managed broker: a master, a replica and three sentinels."""

from __future__ import annotations

import shutil
import time
from dataclasses import dataclass
from pathlib import Path

from tests.faults.harness import Stack, StackOptions
from tests.faults.ledger import Push, QueueLedger, aof_files, pushes
from tests.fixtures.sentinel import SentinelSetup

# Sentinel's view of a dead master: how long it must stay silent, and how long one failover
# attempt may take before another sentinel tries.
DOWN_AFTER_MS = 1000
FAILOVER_TIMEOUT_MS = 5000
# After the SIGKILL, the replica still applies what was already on its socket; no sentinel
# acts before DOWN_AFTER_MS, so its AOF then shows everything it will ever get from that master.
REPLICA_CATCH_UP_SECONDS = 0.3


@dataclass(frozen=True)
class Failover:
    """One SIGKILL of the master, and what it cost."""

    promoted_after: float  # seconds from the kill until the replica served as master
    rejoined_after: float  # seconds from the old master's restart until it was a replica in sync
    written_on_master: int  # first publications the old master's AOF holds
    lacking: list[Push]  # the old master's last publications its replica never received
    killed_at: float
    history: Path  # the copy of the old master's AOF directory

    @property
    def window_ms(self) -> float:
        """How far back before the kill the writes the replica lacks reach."""
        times = [push.taken_at for push in self.lacking if push.taken_at is not None]
        return (self.killed_at - min(times)) * 1000 if times else 0.0


class SentinelStack(Stack):
    """A Stack whose broker is reached through sentinel:// URLs and survives losing its master."""

    def __init__(self, workdir: Path, options: StackOptions | None = None) -> None:
        super().__init__(workdir, options)
        self.setup = SentinelSetup(self.dir / "broker", down_after_ms=DOWN_AFTER_MS,
                                   failover_timeout_ms=FAILOVER_TIMEOUT_MS)
        # AOF directories copied before their server was started again (a resync rewrites them).
        self.histories: list[Path] = []

    def start_broker(self) -> None:
        self.setup.start()

    def stop_broker(self) -> None:
        self.setup.stop()

    @property
    def broker_url(self) -> str:
        return self.setup.url

    @property
    def transport_options(self) -> dict[str, str]:
        return self.setup.transport_options

    def broker_log_files(self) -> list[Path]:
        children = [*self.setup.servers.values(), *self.setup.sentinels]
        return [child.log_path for child in children if child.log_path]

    def ledger(self, *, leaving_out: Path | None = None) -> QueueLedger:
        """The queue's history over every server's AOF, optionally without one saved copy."""
        current = [server.dir for server in self.setup.servers.values()]
        dirs = [d for d in [*self.histories, *current] if d != leaving_out]
        return QueueLedger.read_histories(dirs, self.queue)

    def fail_over(self, down_seconds: float) -> Failover:
        """SIGKILL the master; wait for the promotion; start the old master again as a replica."""
        master = self.setup.master
        replica = self.setup.replica_of(master)
        master.kill()
        killed_at = time.time()
        time.sleep(REPLICA_CATCH_UP_SECONDS)
        replica_has = {push.tag for push in pushes(aof_files(replica.dir, rewritten_ok=True), self.queue)}
        saved = self.dir / "broker-history" / f"{len(self.histories) + 1}-{master.dir.name}"
        shutil.copytree(master.dir / "appendonlydir", saved / "appendonlydir")
        self.histories.append(saved)
        written = list(pushes(aof_files(saved, rewritten_ok=True), self.queue))
        reached = max((i for i, push in enumerate(written) if push.tag in replica_has), default=-1)
        promoted_after = self.setup.wait_failover(master.port, timeout=60)
        time.sleep(down_seconds)
        restarted = time.monotonic()
        master.start()
        self.setup.wait_stable(timeout=90)
        return Failover(promoted_after, time.monotonic() - restarted, len(written), written[reached + 1:], killed_at,
                        saved)
