"""recvault components as child processes: started, awaited, stopped or killed on purpose.

Used by `recvault up`, the fault-injection suite and the benchmarks, which all need the
real `serve`, `worker` and `simulate serve` processes rather than in-process stand-ins.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import IO


class ComponentError(RuntimeError):
    """A component did not start, or died."""


class Component:
    """One `recvault <subcommand>` child process with its own environment and log."""

    def __init__(self, name: str, argv: list[str], env: dict[str, str], *,
                 log_path: Path | None = None, ready_url: str | None = None,
                 cwd: Path | None = None) -> None:
        self.name = name
        self.argv = argv
        self.cwd = cwd
        self.env = env
        self.log_path = log_path
        self.ready_url = ready_url
        self.process: subprocess.Popen | None = None
        self._log: IO[bytes] | None = None

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process else None

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def start(self, *, wait: bool = True, timeout: float = 60) -> Component:
        if self.running:
            return self
        if self.log_path is not None:
            self.log_path.parent.mkdir(parents=True, exist_ok=True)
            self._log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            self.command(), env=self.env, cwd=self.cwd, stdin=subprocess.DEVNULL,
            stdout=self._log, stderr=subprocess.STDOUT if self._log else None,
            start_new_session=True,  # its own process group: signals reach its children too
        )
        if wait and self.ready_url:
            self.wait_ready(timeout)
        return self

    def command(self) -> list[str]:
        """The full command line: `recvault <argv>` with this interpreter."""
        return [sys.executable, "-m", "recvault.cli", *self.argv]

    def wait_ready(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.running:
                raise ComponentError(f"{self.name} exited with {self.process.returncode}{self._tail()}")
            try:
                with urllib.request.urlopen(self.ready_url, timeout=2):
                    return
            except OSError:
                time.sleep(0.2)
        raise ComponentError(f"{self.name} not ready at {self.ready_url} after {timeout:.0f}s{self._tail()}")

    def stop(self, timeout: float = 30) -> None:
        """SIGTERM (graceful: a worker finishes or requeues its tasks), then SIGKILL."""
        if not self.running:
            return self._close_log()
        self._signal_group(signal.SIGTERM)
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self._signal_group(signal.SIGKILL)
            self.process.wait(10)
        self._close_log()

    def kill(self) -> None:
        """SIGKILL the whole process group, as a crash or an OOM kill would."""
        if self.running:
            self._signal_group(signal.SIGKILL)
            self.process.wait(10)
        self._close_log()

    def _signal_group(self, signum: int) -> None:
        try:
            os.killpg(self.process.pid, signum)
        except ProcessLookupError:
            pass

    def _close_log(self) -> None:
        if self._log is not None:
            self._log.close()
            self._log = None

    def _tail(self) -> str:
        if self.log_path is None or not self.log_path.exists():
            return ""
        lines = self.log_path.read_text(errors="replace").splitlines()[-15:]
        return "\n" + "\n".join(lines)

    def __enter__(self) -> Component:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()
