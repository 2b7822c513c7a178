"""The benchmark's private services: redis-server, SeaweedFS and the Twilio simulator, on free ports."""

from __future__ import annotations

import json
import os
import secrets
import shutil
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import redis

from recvault.launch.process import Component
from recvault.launch.services import RedisServer, SeaweedFS, free_port
from recvault.storage.s3 import LOCAL_ACCESS_KEY, S3Store

BUCKET = "recvault-bench"
QUEUE = "recvault"


@dataclass
class Stack:
    """Running services plus the identity and settings every benchmarked process shares."""

    workdir: Path
    redis: RedisServer  # the shipped broker settings (deploy/redis/redis.conf)
    s3: SeaweedFS
    sim: Component
    sim_url: str
    account_sid: str
    auth_token: str = field(repr=False)
    components: list = field(default_factory=list)
    _s3_generation: int = 0

    @property
    def broker_url(self) -> str:
        return self.redis.url + "/0"

    def env(self, **extra: str) -> dict[str, str]:
        """Environment for a recvault process on this stack (no RECVAULT_* leaks in from outside)."""
        base = {k: v for k, v in os.environ.items() if not k.startswith("RECVAULT_")}
        return {
            **base,
            "RECVAULT_TWILIO_ACCOUNT_SID": self.account_sid,
            "RECVAULT_TWILIO_AUTH_TOKENS": self.auth_token,
            "RECVAULT_TWILIO_API_BASE_URL": self.sim_url,
            "RECVAULT_BROKER_URL": self.broker_url,
            "RECVAULT_WORKER_METRICS_PORT": "0",
            "RECVAULT_QUEUE": QUEUE,
            "RECVAULT_S3_ENDPOINT_URL": self.s3.s3_url,
            "RECVAULT_S3_BUCKET": BUCKET,
            "RECVAULT_DATA_DIR": str(self.workdir / "data"),
            # The benchmarks read the workers' `archived` lines: JSON at INFO, whatever the caller uses.
            "RECVAULT_LOG_FORMAT": "json",
            "RECVAULT_LOG_LEVEL": "INFO",
            **extra,
        }

    def client(self) -> redis.Redis:
        return redis.Redis.from_url(self.broker_url)

    def reset_broker(self) -> None:
        """Empty the private broker database: queue and dedup keys."""
        with self.client() as client:
            client.flushdb()

    def store(self) -> S3Store:
        return S3Store(BUCKET, endpoint_url=self.s3.s3_url)

    def log(self, name: str) -> Path:
        return self.workdir / "logs" / f"{name}.log"

    def component(self, name: str, argv: list[str], *, ready_url: str | None = None,
                  **env: str) -> Component:
        """A started `recvault …` process, stopped with the stack at the latest."""
        component = Component(name, argv, self.env(**env), log_path=self.log(name), ready_url=ready_url)
        self.components.append(component)
        return component.start(timeout=90)

    def worker(self, name: str, concurrency: int | None, timeout: float = 90, pool: str | None = None,
               processes: int | None = None) -> Component:
        """A started `recvault worker [-c N] [--pool P] [--processes K]`, returned once Celery says it is ready."""
        argv = ["worker"] + (["-c", str(concurrency)] if concurrency else []) + (["--pool", pool] if pool else [])
        argv += ["--processes", str(processes)] if processes else []
        worker = self.component(name, argv)
        deadline = time.monotonic() + timeout
        while b" ready." not in self.log(name).read_bytes():
            if not worker.running or time.monotonic() > deadline:
                raise RuntimeError(f"worker {name} did not become ready; see {self.log(name)}")
            time.sleep(0.1)
        return worker

    def pids(self, worker: Component) -> dict[str, int]:
        """The processes that archiving keeps busy, by role."""
        assert self.s3.pid is not None and self.redis.pid is not None and self.sim.pid is not None
        assert worker.pid is not None
        return {"worker": worker.pid, "seaweedfs": self.s3.pid, "simulator": self.sim.pid,
                "redis": self.redis.pid}

    def fresh_s3(self) -> None:
        """Empty the broker and replace SeaweedFS with an empty one (frees the disk used so far)."""
        self.reset_broker()
        old = self.s3
        old.stop()
        shutil.rmtree(old.dir, ignore_errors=True)
        self._s3_generation += 1
        self.s3 = SeaweedFS(self.workdir / f"s3-{self._s3_generation}").start()
        self.store().ensure_bucket(create=True)

    def stop(self, component: Component) -> None:
        component.stop()
        if component in self.components:
            self.components.remove(component)


def _start_simulator(workdir: Path, account_sid: str, token: str) -> tuple[Component, str]:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("RECVAULT_")}
    sim = Component("simulator", ["simulate", "serve", "--port", str(port), "--account-sid", account_sid,
                                  "--auth-token", token], env, log_path=workdir / "logs" / "simulator.log",
                    ready_url=f"{url}/_sim/requests")
    return sim.start(timeout=60), url


@contextmanager
def running_stack(keep: bool = False) -> Iterator[Stack]:
    """Start every private service in a fresh directory; stop them and remove it afterwards."""
    workdir = Path(tempfile.mkdtemp(prefix="recvault-bench-"))
    account_sid, token = "AC" + secrets.token_hex(16), secrets.token_hex(16)
    started: list = []
    stack: Stack | None = None
    try:
        broker = RedisServer(workdir / "redis").start()
        started.append(broker)
        s3 = SeaweedFS(workdir / "s3").start()
        started.append(s3)
        sim, sim_url = _start_simulator(workdir, account_sid, token)
        started.append(sim)
        stack = Stack(workdir, broker, s3, sim, sim_url, account_sid, token)
        stack.store().ensure_bucket(create=True)
        yield stack
    finally:
        for component in list(stack.components if stack else []):
            component.stop()
        if stack is not None:
            started[1] = stack.s3  # the current one, after any fresh_s3()
        for service in reversed(started):
            service.stop()
        if not keep:
            shutil.rmtree(workdir, ignore_errors=True)


def post_json(url: str, payload: object, timeout: float = 120) -> object:
    """POST JSON to a local server and return the decoded answer."""
    request = urllib.request.Request(url, data=json.dumps(payload).encode(), method="POST",
                                     headers={"Content-Type": "application/json"})
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with opener.open(request, timeout=timeout) as response:
        return json.loads(response.read())


def local_credentials() -> dict[str, str]:
    """The placeholder key pair recvault uses on a local S3 endpoint, for the baselines' boto3."""
    return {"aws_access_key_id": LOCAL_ACCESS_KEY[0], "aws_secret_access_key": LOCAL_ACCESS_KEY[1]}
