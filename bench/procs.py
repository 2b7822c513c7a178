"""Child processes the benchmark starts itself (baselines, load generators), stopped by group."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

from recvault.launch.process import Component

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


class Launched(Component):
    """Any command (a baseline, a load generator) run like a recvault component."""

    def __init__(self, argv: list[str], *, env: dict[str, str], log_path: Path,
                 port: int | None = None) -> None:
        super().__init__(Path(argv[0]).name, argv, env, log_path=log_path, cwd=ROOT)
        self.port = port

    @classmethod
    def python(cls, module_args: list[str], **kwargs) -> Launched:
        """`python -m …` with this interpreter."""
        return cls([sys.executable, "-m", *module_args], **kwargs)

    def command(self) -> list[str]:
        return self.argv

    def start(self, timeout: float = 30) -> Launched:
        super().start(wait=False)
        if self.port is not None:
            wait_port(self.port, process=self.process, timeout=timeout)
        return self
