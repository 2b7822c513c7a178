"""One launcher for every child process recvault starts on purpose.

`recvault up`, the tests, the fault suite and the benchmarks all start real processes —
recvault's own `serve`, `worker` and `simulate serve`, and the local services they need
(SeaweedFS, redis-server) — and stop or kill them deliberately. They share this class:
each child runs in its own session (a signal reaches its whole process group and a Ctrl-C
meant for the parent does not), logs to a file when given one, is ready when its probe
says so, and is stopped when the interpreter exits, so none outlives its parent.
"""

from __future__ import annotations

import atexit
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import IO, Self

# Probes go straight to 127.0.0.1, whatever HTTP(S)_PROXY says.
_NO_PROXY = urllib.request.build_opener(urllib.request.ProxyHandler({}))
# Children that may be running; stopped at interpreter exit.
_running: set[ChildProcess] = set()


class LaunchError(RuntimeError):
    """A child process is missing, would not start, or died."""


def http_get(url: str, timeout: float = 2) -> bytes | None:
    """The body of a 2xx answer from a local server, or None."""
    try:
        with _NO_PROXY.open(url, timeout=timeout) as response:
            return bytes(response.read()) if 200 <= response.status < 300 else None
    except (urllib.error.URLError, OSError, ValueError):
        return None


def http_answers(url: str, timeout: float = 2) -> bool:
    """Whether a local server answers HTTP at all (any status: one that requires signed requests says 403)."""
    try:
        with _NO_PROXY.open(url, timeout=timeout):
            return True
    except urllib.error.HTTPError:
        return True
    except (urllib.error.URLError, OSError, ValueError):
        return False


def log_tail(path: Path | None, lines: int = 30) -> str:
    """The last lines of a log file, for an error message."""
    if path is None:
        return "(no log)"
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


class ChildProcess:
    """A child process in its own session, with start, readiness, stop, kill and an exit guard."""

    startup_timeout = 60.0

    def __init__(self, name: str, *, log_path: Path | None = None, cwd: Path | None = None,
                 env: dict[str, str] | None = None) -> None:
        self.name = name
        self.log_path = log_path
        self.cwd = cwd
        self.env = env
        self.process: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    # --- what a kind of child says about itself ----------------------------------
    def command(self) -> list[str]:
        raise NotImplementedError

    def environment(self) -> dict[str, str]:
        return dict(os.environ) if self.env is None else self.env

    def is_ready(self) -> bool:
        """Whether the child serves; a child without a probe is ready once started."""
        return True

    def before_start(self) -> None:
        """Checks and preparation before the process is started."""

    def after_exit(self) -> None:
        """Tidy up what the process leaves behind once it has exited."""

    # --- lifecycle -------------------------------------------------------------------
    @property
    def pid(self) -> int | None:
        return self.process.pid if self.running and self.process else None

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def start(self, *, wait: bool = True, timeout: float | None = None) -> Self:
        """Start the child (again, with the same command) and, with `wait`, until it is ready."""
        if self.running:
            return self
        self.before_start()
        if self.log_path is not None:
            self.log_path.parent.mkdir(parents=True, exist_ok=True)
            self._log = self.log_path.open("ab")
            self._log.write(f"--- {time.strftime('%Y-%m-%d %H:%M:%S')} starting {self.name}\n".encode())
            self._log.flush()
        self.process = subprocess.Popen(
            self.command(), env=self.environment(), cwd=self.cwd, stdin=subprocess.DEVNULL,
            stdout=self._log, stderr=subprocess.STDOUT if self._log else None,
            start_new_session=True,
        )
        _running.add(self)
        if wait:
            self.wait_ready(self.startup_timeout if timeout is None else timeout)
        return self

    def wait_ready(self, timeout: float) -> None:
        """Return once the probe answers; LaunchError with the log's tail if it dies or times out."""
        deadline = time.monotonic() + timeout
        while not self.is_ready():
            if not self.running:
                code = self.process.returncode if self.process else None
                self._reaped()
                raise LaunchError(f"{self.name} exited with code {code} while starting; "
                                  f"log {self.log_path}:\n{log_tail(self.log_path)}")
            if time.monotonic() > deadline:
                self.kill()
                raise LaunchError(f"{self.name} was not ready within {timeout:.0f} s; "
                                  f"log {self.log_path}:\n{log_tail(self.log_path)}")
            time.sleep(0.1)

    def signal(self, signum: int) -> None:
        """Send a signal to the child's whole process group."""
        if self.process is None:
            return
        try:
            os.killpg(self.process.pid, signum)
        except ProcessLookupError:
            pass

    def stop(self, timeout: float = 30) -> None:
        """Graceful stop: SIGTERM (a worker finishes or hands back its task), then SIGKILL."""
        if self.process is None:
            return self._close_log()
        if self.running:
            self.signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.signal(signal.SIGKILL)
                self.process.wait(10)
        self._reaped()

    def kill(self) -> None:
        """SIGKILL the whole process group, as a crash or an OOM kill would."""
        if self.process is None:
            return self._close_log()
        if self.running:
            self.signal(signal.SIGKILL)
            self.process.wait(10)
        self._reaped()

    def _reaped(self) -> None:
        _running.discard(self)
        self._close_log()
        self.after_exit()

    def _close_log(self) -> None:
        if self._log is not None:
            self._log.close()
            self._log = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()


class Component(ChildProcess):
    """One `recvault <subcommand>` child, ready when `ready_url` answers and `ready` says so (if given)."""

    def __init__(self, name: str, argv: list[str], env: dict[str, str] | None = None, *,
                 log_path: Path | None = None, ready_url: str | None = None,
                 ready: Callable[[], bool] | None = None, cwd: Path | None = None) -> None:
        super().__init__(name, log_path=log_path, cwd=cwd, env=env)
        self.argv = argv
        self.ready_url = ready_url
        # A probe of its own, for a child without an HTTP address (a worker answering a ping).
        self.ready = ready

    def command(self) -> list[str]:
        """`recvault <argv>` with this interpreter."""
        return [sys.executable, "-m", "recvault.cli", *self.argv]

    def is_ready(self) -> bool:
        if self.ready_url is not None and http_get(self.ready_url) is None:
            return False
        return self.ready is None or self.ready()


@atexit.register
def _stop_all() -> None:
    """Stop every child still running as the interpreter exits."""
    for child in list(_running):
        child.stop(timeout=10)
