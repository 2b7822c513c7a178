"""The HTTP servers the ingest benchmark compares, each started on the same port in turn."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import dataclass
from functools import cache

from bench.procs import Launched, python_env
from bench.stack import QUEUE, Stack

# What the tutorial design runs: two sync workers (gunicorn's usual `-w 2` on a 2-core box).
TUTORIAL_WORKERS = 2


@dataclass(frozen=True)
class Server:
    """One design under test: its name, process count and whether it queues callbacks in Redis."""

    name: str
    processes: int
    queues: bool
    kind: str  # "ceiling", "tutorial" or "recvault"


@cache
def serve_supports_processes() -> bool:
    """Whether `recvault serve` takes --processes N (several processes sharing one port)."""
    done = subprocess.run([sys.executable, "-m", "recvault.cli", "serve", "--help"],
                          capture_output=True, text=True, timeout=60)
    return "--processes" in done.stdout


def start(server: Server, stack: Stack, port: int) -> list:
    """Start `server` on 127.0.0.1:`port`; returns handles with a stop() method."""
    if server.kind == "ceiling":
        return [Launched.python(["bench.baselines.ceiling_app", str(port)], env=python_env(),
                                log_path=stack.log("ceiling"), port=port).start()]
    if server.kind == "tutorial":
        env = python_env({"TUTORIAL_AUTH_TOKEN": stack.auth_token, "TUTORIAL_BROKER_URL": stack.broker_url,
                          "TUTORIAL_QUEUE": QUEUE})
        argv = ["gunicorn", "-w", str(server.processes), "-b", f"127.0.0.1:{port}", "--log-level", "warning",
                "bench.baselines.tutorial_app:create_app()"]
        return [Launched.python(argv, env=env, log_path=stack.log("tutorial"), port=port).start()]
    return _start_recvault(server.processes, stack, port)


def _start_recvault(processes: int, stack: Stack, port: int) -> list:
    argv = ["serve", "--host", "127.0.0.1", "--port", str(port)]
    if processes > 1:
        argv += ["--processes", str(processes)]
    return [stack.component("ingest", argv, ready_url=f"http://127.0.0.1:{port}/readyz")]


def servers(processes: tuple[int, ...]) -> list[Server]:
    """Ceiling, tutorial, then recvault with each process count this build can run."""
    counts = [n for n in processes if n == 1 or serve_supports_processes()]
    return [Server("aiohttp ceiling (parse only)", 1, False, "ceiling"),
            Server(f"tutorial: Flask + gunicorn ×{TUTORIAL_WORKERS}", TUTORIAL_WORKERS, True, "tutorial"),
            *(Server(f"recvault ×{n}", n, True, "recvault") for n in counts)]
