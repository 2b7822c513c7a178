"""Child processes the benchmark starts itself (baselines, load generators), stopped by group."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import IO

# The repository root: baselines and helpers run as `python -m bench.…` from here.
ROOT = Path(__file__).resolve().parent.parent


def python_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """The current environment with the repository importable, plus `extra`."""
    env = {**os.environ, **(extra or {})}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH", "")]))
    return env


def wait_port(port: int, *, process: subprocess.Popen | None = None, timeout: float = 30) -> None:
    """Return once 127.0.0.1:`port` accepts connections; fail if `process` dies first."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"{process.args[:4]} exited with {process.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"nothing listens on 127.0.0.1:{port} after {timeout:.0f}s")


class Launched:
    """One command run in its own process group, its output in a log file."""

    def __init__(self, argv: list[str], *, env: dict[str, str], log_path: Path,
                 port: int | None = None) -> None:
        self.argv, self.env, self.log_path, self.port = argv, env, log_path, port
        self.process: subprocess.Popen | None = None
        self._log: IO[bytes] | None = None

    @classmethod
    def python(cls, module_args: list[str], **kwargs) -> Launched:
        """`python -m …` with this interpreter."""
        return cls([sys.executable, "-m", *module_args], **kwargs)

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def start(self, timeout: float = 30) -> Launched:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log = self.log_path.open("ab")
        self.process = subprocess.Popen(self.argv, env=self.env, cwd=ROOT, stdin=subprocess.DEVNULL,
                                        stdout=self._log, stderr=subprocess.STDOUT,
                                        start_new_session=True)
        if self.port is not None:
            wait_port(self.port, process=self.process, timeout=timeout)
        return self

    def stop(self, timeout: float = 15) -> None:
        """SIGTERM the group, then SIGKILL if it lingers."""
        if self.process is not None and self.process.poll() is None:
            self._signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self._signal(signal.SIGKILL)
                self.process.wait(10)
        if self._log is not None:
            self._log.close()
            self._log = None

    def _signal(self, signum: int) -> None:
        try:
            os.killpg(self.process.pid, signum)
        except ProcessLookupError:
            pass

    def __enter__(self) -> Launched:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()
