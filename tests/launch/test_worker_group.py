"""The default `recvault worker`: two threads worker processes, restarted alone after a pause, stopped and killed
together (the restart policy itself, with stand-in processes: test_restart_policy.py)."""

from __future__ import annotations

import signal

import psutil
import pytest

from recvault.commands.worker import node_name
from recvault.launch.process import Component
from recvault.settings import DEFAULT_CONCURRENCY
from tests.fixtures.worker import wait_for
from tests.workers.test_worker_start import GOOD_POLICY, _env

pytestmark = pytest.mark.system


def _workers(main: psutil.Process) -> list[psutil.Process]:
    """The worker processes alive under `main` (one just killed is a zombie until it is reaped)."""
    alive = []
    for child in main.children():
        try:
            if "worker" in child.cmdline():
                alive.append(child)
        except psutil.ZombieProcess:
            continue
    return alive


def test_node_names_stay_distinct_per_process() -> None:
    assert [node_name("recvault@%h", n) for n in range(2)] == ["recvault-1@%h", "recvault-2@%h"]


def test_the_default_worker_runs_two_threads_workers_restarts_one_that_dies_and_stops_both(
        redis_url, s3_endpoint, sim, sim_account, tmp_path) -> None:
    policy = tmp_path / "policy.toml"
    policy.write_text(GOOD_POLICY)
    log = tmp_path / "worker.log"
    worker = Component("worker", ["worker"], _env(redis_url, s3_endpoint, sim, sim_account, policy, "worker-group"),
                       log_path=log).start(wait=False)
    try:
        wait_for(lambda: log.read_bytes().count(b" ready.") >= 2, timeout=90, what="both worker processes")
        main = psutil.Process(worker.pid)
        children = _workers(main)
        assert len(children) == 2
        for child in children:
            command = child.cmdline()
            assert command[command.index("--pool") + 1] == "threads"
            assert command[command.index("-c") + 1] == str(DEFAULT_CONCURRENCY["threads"])
        # One dies (an OOM kill): it alone is started again.
        children[0].kill()
        wait_for(lambda: len(_workers(main)) == 2 and children[0].pid not in [c.pid for c in _workers(main)],
                 timeout=30, what="the dead worker process started again")
        assert children[1].is_running()
        wait_for(lambda: log.read_bytes().count(b" ready.") >= 3, timeout=90, what="the new worker ready")
        # All of them at once: all are started again, and the command goes on.
        for child in _workers(main):
            child.kill()
        wait_for(lambda: len(_workers(main)) == 2, timeout=30, what="both worker processes started again")
        assert worker.running
        wait_for(lambda: log.read_bytes().count(b" ready.") >= 5, timeout=90, what="the new workers ready")
        survivors = _workers(main)
        worker.signal(signal.SIGTERM)
        assert worker.process is not None and worker.process.wait(60) == 0
        wait_for(lambda: not any(child.is_running() for child in survivors), timeout=10, what="both stopped")
    finally:
        worker.kill()


def test_a_worker_process_that_stops_is_started_again_after_a_pause_that_doubles(
        redis_url, s3_endpoint, sim, sim_account, tmp_path) -> None:
    policy = tmp_path / "policy.toml"
    policy.write_text(GOOD_POLICY)
    log = tmp_path / "worker.log"
    worker = Component("worker", ["worker"], _env(redis_url, s3_endpoint, sim, sim_account, policy, "worker-pauses"),
                       log_path=log).start(wait=False)
    try:
        wait_for(lambda: log.read_bytes().count(b" ready.") >= 2, timeout=90, what="both worker processes")
        main = psutil.Process(worker.pid)
        first, second = sorted(_workers(main), key=lambda child: child.cmdline().index("-n"))
        assert "recvault-1@%h" in first.cmdline() and "recvault-2@%h" in second.cmdline()
        # The first one stops by itself, twice (SIGQUIT: Celery's cold stop, straight to the process).
        for stop, pause in enumerate((b"pause_seconds=1.0", b"pause_seconds=2.0")):
            [target] = [child for child in _workers(main) if "recvault-1@%h" in child.cmdline()]
            target.send_signal(signal.SIGQUIT)
            wait_for(lambda pause=pause: pause in log.read_bytes(), timeout=30,
                     what=f"the restart with {pause.decode()}")
            wait_for(lambda ready=3 + stop: log.read_bytes().count(b" ready.") >= ready, timeout=90,
                     what="it ready again")
        assert second.is_running() and second in _workers(main)  # the other one was left alone
        assert worker.running
        worker.signal(signal.SIGTERM)
        assert worker.process is not None and worker.process.wait(60) == 0
    finally:
        worker.kill()


def test_killing_the_worker_outright_kills_its_worker_processes_too(
        redis_url, s3_endpoint, sim, sim_account, tmp_path) -> None:
    policy = tmp_path / "policy.toml"
    policy.write_text(GOOD_POLICY)
    log = tmp_path / "worker.log"
    worker = Component("worker", ["worker"], _env(redis_url, s3_endpoint, sim, sim_account, policy, "worker-kill"),
                       log_path=log).start(wait=False)
    try:
        wait_for(lambda: log.read_bytes().count(b" ready.") >= 2, timeout=90, what="both worker processes")
        children = _workers(psutil.Process(worker.pid))
        assert worker.process is not None
        worker.process.send_signal(signal.SIGKILL)  # this process only, not its group
        wait_for(lambda: not any(child.is_running() and child.status() != psutil.STATUS_ZOMBIE
                                 for child in children), timeout=10, what="the worker processes to die with it")
    finally:
        worker.kill()
