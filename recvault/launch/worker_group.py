"""Several `recvault worker` processes run as one: started together, restarted alone, stopped together.

One threads worker keeps tens of archives in flight, but each in-flight archive holds its
recording's bytes, so one process's memory bound caps how many it may run. A site that
needs more runs more processes; `recvault worker --processes N` starts N single-process
workers (each a full Celery worker with its own heartbeat, clients and threads) and
supervises them like a small systemd:

* each runs in a process group of its own and dies with this process (PR_SET_PDEATHSIG),
  so killing this one outright (SIGKILL, OOM) kills them all, as it would a prefork pool;
* SIGTERM, SIGINT and SIGQUIT sent to this process are passed on once (a signal sent to
  the whole group would otherwise reach each twice, and a second Ctrl-C means a cold
  stop to Celery), and this process exits once all have stopped: each finishes or hands
  back its tasks as a lone worker would;
* one killed by a signal (an OOM kill) is started again; its messages come back through
  the heartbeat's records like any killed worker's;
* one that exits by itself (2 for a bad setting or policy rule, 1 for a bucket or broker it
  cannot work with) stops them all, and this process exits with its status, as a lone
  worker would: a restart here would meet the same problem, and the supervisor above
  (Kubernetes, systemd) sees it.
"""

from __future__ import annotations

import ctypes
import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable

log = logging.getLogger("recvault.worker")

# Linux prctl option: the signal a child gets when its parent dies.
PR_SET_PDEATHSIG = 1
# A worker that keeps dying is started again at most this often.
RESTART_PAUSE_SECONDS = 1.0
POLL_SECONDS = 0.2


def _die_with_parent() -> None:
    """In the child, before exec: SIGKILL it when the parent goes (Linux; elsewhere a no-op)."""
    try:
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    except (OSError, AttributeError):
        pass


class WorkerGroup:
    """`count` worker processes, each started with `argv(index)` (its `recvault …` arguments)."""

    def __init__(self, count: int, argv: Callable[[int], list[str]], env: dict[str, str] | None = None) -> None:
        self._argv = argv
        # The workers get this process's environment (like every launched child) plus `env`.
        self._env = {**os.environ, **(env or {})}
        self._children: dict[int, subprocess.Popen[bytes] | None] = dict.fromkeys(range(count))
        self._stopping: int | None = None

    def _start(self, index: int) -> None:
        self._children[index] = subprocess.Popen(
            [sys.executable, "-m", "recvault.cli", *self._argv(index)], env=self._env,
            stdin=subprocess.DEVNULL, preexec_fn=_die_with_parent, process_group=0,
        )

    def _forward(self, signum: int, _frame: object) -> None:
        self._stopping = signum
        for child in self._children.values():
            if child is not None and child.poll() is None:
                child.send_signal(signum)

    def run(self) -> int:
        """Start every worker and supervise them until told to stop; the exit status to return."""
        for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGQUIT):
            signal.signal(signum, self._forward)
        for index in self._children:
            self._start(index)
        status = 0
        # Until told to stop and every worker has: workers that all died at once (an OOM kill
        # of the lot) are started again like one that died alone.
        while self._stopping is None or any(child is not None and child.poll() is None
                                            for child in self._children.values()):
            time.sleep(POLL_SECONDS)
            if self._stopping is not None:
                continue
            for index, child in self._children.items():
                code = child.poll() if child is not None else None
                if code is None:
                    continue
                if code > 0:
                    # It stopped by itself: on its configuration (2), or on what it cannot work
                    # without (the bucket, the broker), which a restart here would meet again.
                    # The group stops with its status, as one worker would, for its supervisor.
                    log.error("a worker process stopped; stopping the others", extra={"index": index, "code": code})
                    self._forward(signal.SIGTERM, None)
                    status = code
                    break
                # Killed by a signal (the OOM killer, an operator's kill -9): only it is started again.
                log.warning("worker process killed; starting it again", extra={"index": index, "code": code})
                time.sleep(RESTART_PAUSE_SECONDS)
                self._start(index)
        if status == 0:
            codes = [child.returncode for child in self._children.values() if child is not None]
            status = max((code for code in codes if code > 0), default=0)
        return status
