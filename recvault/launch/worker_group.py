"""Several `recvault worker` processes run as one: started together, restarted alone, stopped together.

One threads worker keeps tens of archives in flight, but each in-flight archive holds its
recording's bytes, so one process's memory bound caps how many it may run. A site that
needs more runs more processes; `recvault worker --processes N` starts N single-process
workers (each a full Celery worker with its own heartbeat, clients and threads) and
supervises them like a small systemd:

* the first is started alone and the others once it consumes, so a problem every one of them
  would meet at start (the bucket, S3 or the broker out of reach, a bad setting) is said
  once, by that one, and the group exits with its status for the supervisor above it
  (Kubernetes, systemd): 2 for a setting or policy rule, 1 for the rest;
* each tells this process when it consumes (a byte on a pipe of its own, `--ready-fd`), and
  one that stops after that — killed by a signal (an OOM kill), or exiting by itself on an
  error (Celery giving up on the broker) — is started again alone, after a pause that
  doubles at each consecutive stop (1 s, 2 s, 4 s … up to a minute) and starts again at
  1 s once a process has run for five minutes; its messages come back through the
  heartbeat's records like any stopped worker's;
* one that exits with 2, its configuration, stops them all at any time, and this process
  exits 2: a restart would meet the same setting;
* each runs in a process group of its own and dies with this process (PR_SET_PDEATHSIG),
  so killing this one outright (SIGKILL, OOM) kills them all, as it would a prefork pool;
* SIGTERM, SIGINT and SIGQUIT sent to this process are passed on once (a signal sent to
  the whole group would otherwise reach each twice, and a second Ctrl-C means a cold
  stop to Celery), and this process exits once all have stopped: each finishes or hands
  back its tasks as a lone worker would.
"""

from __future__ import annotations

import ctypes
import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

log = logging.getLogger("recvault.worker")

# Linux prctl option: the signal a child gets when its parent dies.
PR_SET_PDEATHSIG = 1
POLL_SECONDS = 0.2
# The exit status of a worker stopped by its configuration (a setting, a policy rule).
CONFIGURATION_ERROR = 2
# The option that tells a worker process which inherited descriptor to write to once it consumes.
READY_FD_OPTION = "--ready-fd"


@dataclass(frozen=True)
class RestartPolicy:
    """How long a stopped worker process waits before it is started again."""

    first_pause: float = 1.0
    longest_pause: float = 60.0
    # A process that ran this long before it stopped is started again after first_pause.
    stable_after: float = 300.0

    def next_pause(self, pause: float) -> float:
        return min(pause * 2, self.longest_pause)


def _die_with_parent() -> None:
    """In the child, before exec: SIGKILL it when the parent goes (Linux; elsewhere a no-op)."""
    try:
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    except (OSError, AttributeError):
        pass


class _Slot:
    """One worker process of the group: its process, and where its restarts stand."""

    def __init__(self, policy: RestartPolicy) -> None:
        self.process: subprocess.Popen[bytes] | None = None
        self.ready_pipe: int | None = None  # read end of the process's ready pipe, until it says ready
        self.ever_ready = False  # a process of this slot has consumed: a stop is no start-up failure
        self.started_at = 0.0
        self.pause = policy.first_pause
        self.restart_at: float | None = None
        self.told_to_stop = False  # it ran when the group was told to stop: its status counts

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def check_ready(self) -> None:
        """Read the process's ready byte, if it has written it."""
        if self.ready_pipe is None:
            return
        try:
            said = os.read(self.ready_pipe, 1)
        except BlockingIOError:
            return
        if said:
            self.ever_ready = True
        self.close_pipe()  # said it, or the pipe's end is closed: the process exited

    def close_pipe(self) -> None:
        if self.ready_pipe is not None:
            os.close(self.ready_pipe)
            self.ready_pipe = None


class WorkerGroup:
    """`count` worker processes, each started with `argv(index)` (its `recvault …` arguments)."""

    def __init__(self, count: int, argv: Callable[[int], list[str]], env: dict[str, str] | None = None, *,
                 policy: RestartPolicy | None = None, program: Sequence[str] | None = None) -> None:
        self._argv = argv
        # The workers get this process's environment (like every launched child) plus `env`.
        self._env = {**os.environ, **(env or {})}
        self._policy = policy or RestartPolicy()
        self._program = list(program or [sys.executable, "-m", "recvault.cli"])
        self._slots = [_Slot(self._policy) for _ in range(count)]
        self._stopping: int | None = None

    def _start(self, index: int) -> None:
        slot = self._slots[index]
        read_end, write_end = os.pipe()
        os.set_blocking(read_end, False)
        try:
            slot.process = subprocess.Popen(
                [*self._program, *self._argv(index), READY_FD_OPTION, str(write_end)], env=self._env,
                stdin=subprocess.DEVNULL, preexec_fn=_die_with_parent, process_group=0, pass_fds=(write_end,),
            )
        except BaseException:
            os.close(read_end)
            raise
        finally:
            os.close(write_end)  # the child holds it now; its exit closes the pipe
        slot.close_pipe()
        slot.ready_pipe, slot.started_at, slot.restart_at = read_end, time.monotonic(), None

    def _forward(self, signum: int, _frame: object) -> None:
        self._stopping = signum
        for slot in self._slots:
            slot.restart_at = None  # one waiting to be started again stays stopped
            if slot.running:
                assert slot.process is not None
                slot.told_to_stop = True
                slot.process.send_signal(signum)

    def run(self) -> int:
        """Start every worker and supervise them until told to stop; the exit status to return."""
        for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGQUIT):
            signal.signal(signum, self._forward)
        try:
            return self._supervise()
        finally:
            for slot in self._slots:
                slot.close_pipe()

    def _supervise(self) -> int:
        self._start(0)  # alone, until it consumes (see the module docstring)
        waiting = list(range(1, len(self._slots)))
        status = 0
        while self._stopping is None or any(slot.running for slot in self._slots):
            time.sleep(POLL_SECONDS)
            if self._stopping is not None:
                continue
            now = time.monotonic()
            for index, slot in enumerate(self._slots):
                if slot.process is None:
                    continue
                slot.check_ready()
                code = slot.process.poll()
                if code is None or slot.restart_at is not None:
                    continue
                stop = self._on_exit(index, slot, code, now)
                if stop is not None:
                    status = stop
                    break
            if self._stopping is None:
                if waiting and self._slots[0].ever_ready:
                    for index in waiting:
                        self._start(index)
                    waiting = []
                for index, slot in enumerate(self._slots):
                    if slot.restart_at is not None and slot.restart_at <= now:
                        self._start(index)
        if status == 0:
            # Told to stop: a process that failed to stop cleanly makes the group's status.
            codes = [slot.process.returncode for slot in self._slots if slot.process is not None and slot.told_to_stop]
            status = max((code for code in codes if code is not None and code > 0), default=0)
        return status

    def _on_exit(self, index: int, slot: _Slot, code: int, now: float) -> int | None:
        """A worker process exited while the group runs: schedule its restart, or the group's status to stop with."""
        slot.check_ready()  # a byte it wrote just before it exited is still in the pipe
        slot.close_pipe()
        if code == CONFIGURATION_ERROR or (code > 0 and not slot.ever_ready):
            # Its configuration (2, at any time), or a first start that failed: every process
            # would meet the same. It said why; the group stops with its status, for its supervisor.
            if slot.ever_ready:
                log.error("a worker process stopped on its configuration; stopping the others",
                          extra={"index": index, "code": code})
            self._forward(signal.SIGTERM, None)
            return code
        if now - slot.started_at >= self._policy.stable_after:
            slot.pause = self._policy.first_pause
        pause, slot.pause = slot.pause, self._policy.next_pause(slot.pause)
        slot.restart_at = now + pause
        # code: the exit status, or minus the signal that killed it.
        log.warning("worker process stopped; starting it again", extra={"index": index, "code": code,
                                                                        "pause_seconds": pause})
        return None
