"""The stack's `recvault worker` processes, kept running the way systemd or Kubernetes would."""

from __future__ import annotations

import os
import re
import secrets
import signal
import threading
import time
from collections import Counter
from pathlib import Path

from recvault.launch.process import Component, LaunchError

# Celery logs "<node> ready." once its consumer listens.
READY_MARK = b' ready."'
RECEIVED = re.compile(r"Task recvault\.archive_event\[([0-9a-f-]+)\] received")
FINISHED = re.compile(r"Task recvault\.archive_event\[([0-9a-f-]+)\] succeeded")


class WorkerPool:
    """Workers that are started again whenever one stops on its own; scenario kills included."""

    def __init__(self, workers: list[Component]) -> None:
        self.workers = workers
        # Held while a scenario kills and restarts workers, so the supervisor leaves them be.
        self.lock = threading.RLock()
        # (worker, exit status) of every worker that stopped on its own and was started again.
        self.restarts: list[tuple[str, int | None]] = []
        self._closing = threading.Event()
        self._supervisor = threading.Thread(target=self._supervise, name="supervisor", daemon=True)
        # Where each worker's log begins for its current run.
        self._run_offsets: dict[str, int] = {}

    def start(self) -> None:
        self.start_workers(self.workers)
        self._supervisor.start()

    def stop_supervising(self) -> None:
        self._closing.set()
        if self._supervisor.is_alive():
            self._supervisor.join()

    def _supervise(self) -> None:
        while not self._closing.wait(0.5):
            with self.lock:
                for worker in self.workers:
                    if worker.process is not None and worker.process.poll() is not None:
                        self.restarts.append((worker.name, worker.process.returncode))
                        worker.kill()  # nothing left to kill: this closes its log file
                        self.start_workers([worker])

    def start_workers(self, workers: list[Component], timeout: float = 60) -> None:
        """Start workers side by side and wait until Celery reports each one ready."""
        with self.lock:
            offsets = {}
            for worker in workers:
                assert worker.log_path is not None
                offsets[worker.name] = worker.log_path.stat().st_size if worker.log_path.exists() else 0
                self._run_offsets[worker.name] = offsets[worker.name]
                worker.start(wait=False)
            deadline = time.monotonic() + timeout
            for worker in workers:
                while READY_MARK not in worker.log_path.read_bytes()[offsets[worker.name]:]:
                    if not worker.running or time.monotonic() > deadline:
                        raise LaunchError(f"{worker.name} did not become ready; see {worker.log_path}")
                    time.sleep(0.1)

    def kill_workers(self, workers: list[Component]) -> None:
        """SIGKILL workers' process groups, then start them again."""
        with self.lock:
            for worker in workers:
                worker.kill()
            self.start_workers(workers)

    def restart(self, worker: Component) -> None:
        """A graceful restart (SIGTERM: a warm shutdown, then a fresh start)."""
        with self.lock:
            worker.stop()
            self.start_workers([worker])

    @staticmethod
    def kill_pool_process(worker: Component) -> bool:
        """SIGKILL one worker process of the default worker (or one pool process of a prefork
        worker); False when it has none right now."""
        children = WorkerPool._pool_pids(worker)
        if not children:
            return False
        try:
            os.kill(secrets.choice(children), signal.SIGKILL)
        except ProcessLookupError:
            return False
        return True

    @staticmethod
    def kill_pool_processes(worker: Component) -> bool:
        """SIGKILL every worker process of the default worker (or every pool process of a prefork
        worker); False when it has none right now."""
        children = WorkerPool._pool_pids(worker)
        for pid in children:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        return bool(children)

    @staticmethod
    def _pool_pids(worker: Component) -> list[int]:
        if worker.pid is None:
            return []
        try:
            return [int(pid) for pid in (Path("/proc") / str(worker.pid) / "task" / str(worker.pid) / "children")
                    .read_text().split()]
        except OSError:
            return []

    @staticmethod
    def received_count(worker: Component, task_id: str) -> int:
        """How many times the worker's log (all runs) says it received this task."""
        if worker.log_path is None or not worker.log_path.exists():
            return 0
        return worker.log_path.read_bytes().count(f"Task recvault.archive_event[{task_id}] received".encode())

    def in_flight(self, worker: Component) -> set[str]:
        """Task ids this run of the worker has received and not finished (running or held)."""
        if worker.log_path is None or not worker.log_path.exists():
            return set()
        text = worker.log_path.read_bytes()[self._run_offsets.get(worker.name, 0):].decode(errors="replace")
        return set(RECEIVED.findall(text)) - set(FINISHED.findall(text))

    def redelivered(self) -> int:
        """Task ids the workers received more than once (redeliveries, and retries if any)."""
        received: Counter = Counter()
        for worker in self.workers:
            if worker.log_path is not None and worker.log_path.exists():
                received.update(RECEIVED.findall(worker.log_path.read_text(errors="replace")))
        return sum(1 for count in received.values() if count > 1)
