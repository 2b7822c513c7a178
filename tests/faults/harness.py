"""A whole recvault deployment of real processes, private to one scenario, with its fault switches.

Redis (AOF, fsync always) and SeaweedFS are this stack's own, on free ports, so stopping or
killing them touches nothing else. Ingest and workers are `recvault serve` and `recvault
worker` child processes configured only through RECVAULT_* variables, logging JSON to files.
"""

from __future__ import annotations

import base64
import json
import logging
import os
import secrets
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import redis

from recvault.launch.process import Component
from recvault.launch.services import RedisServer, SeaweedFS, free_port
from recvault.queue.broker import broker_client
from recvault.simulator.recordings import SimState, new_sid
from recvault.workers.dead_letters import DLQ_KEY
from tests.faults.archive_view import ArchiveView
from tests.faults.ledger import QueueLedger
from tests.faults.peers import ForeignHost, WitnessedSim
from tests.faults.witness import DeletionWitness, expected_media
from tests.faults.worker_pool import WorkerPool

CALLBACK_PATH = "/twilio/recording-status"
# Local requests go straight to 127.0.0.1, whatever HTTP(S)_PROXY says.
_LOCAL = urllib.request.build_opener(urllib.request.ProxyHandler({}))


@dataclass(frozen=True)
class StackOptions:
    """The settings a scenario tunes; everything else is recvault's default."""

    workers: int = 2
    concurrency: int = 2
    max_retries: int = 12
    retry_backoff_max_seconds: int = 2
    not_found_grace: int = 120
    delete_after_archive: bool = False


class Stack:
    """Redis, SeaweedFS, the simulated Twilio, a foreign host, ingest and workers."""

    bucket = "faults"
    queue = "recvault"

    def __init__(self, workdir: Path, options: StackOptions | None = None) -> None:
        self.dir = Path(workdir).absolute()
        self.options = options or StackOptions()
        self.account_sid, self.token = new_sid("AC"), secrets.token_hex(16)
        self.api_key_sid, self.api_key_secret = new_sid("SK"), secrets.token_urlsafe(24)
        self.aws_secret = secrets.token_urlsafe(30)
        self.redis = RedisServer(self.dir / "redis")
        self.s3 = SeaweedFS(self.dir / "s3")
        self.view = ArchiveView(self.s3.s3_url, self.bucket)
        state = SimState()
        # The witness reads S3 from the simulator's thread: it gets a client of its own.
        self.sim = WitnessedSim(state, DeletionWitness(ArchiveView(self.s3.s3_url, self.bucket), state))
        self.foreign = ForeignHost()
        self.ingest_port = free_port()
        self.ingest: Component | None = None
        self.pool = WorkerPool([])

    # --- life cycle -------------------------------------------------------------
    def start(self) -> Stack:
        # Workers killed mid-download make the simulator log every cut connection: expected here.
        logging.getLogger("aiohttp.server").setLevel(logging.CRITICAL)
        self.start_broker()
        self.s3.start()
        self.sim.start_in_thread()
        self.sim.state.add_account(self.account_sid, self.token)
        self.sim.state.add_api_key(self.account_sid, self.api_key_sid, self.api_key_secret)
        self.foreign.start()
        env = self.environment()
        logs = self.dir / "logs"
        self.ingest = Component("ingest", ["serve", "--port", str(self.ingest_port)], env,
                                log_path=logs / "ingest.log", ready_url=f"{self.ingest_url}/healthz")
        self.pool.workers[:] = [
            Component(f"worker{n}", ["worker", "-c", str(self.options.concurrency), "-n", f"w{n}@%h"],
                      env, log_path=logs / f"worker{n}.log")
            for n in range(1, self.options.workers + 1)
        ]
        self.ingest.start()
        self.pool.start()
        return self

    def close(self) -> None:
        self.pool.stop_supervising()
        components = [c for c in [*self.pool.workers, self.ingest] if c is not None]
        with ThreadPoolExecutor(max(1, len(components))) as pool:  # warm shutdowns overlap
            list(pool.map(lambda component: component.stop(timeout=20), components))
        self.sim.stop()
        self.foreign.stop()
        self.s3.stop()
        self.stop_broker()

    def start_broker(self) -> None:
        self.redis.start()

    def stop_broker(self) -> None:
        self.redis.stop()

    def __enter__(self) -> Stack:
        try:
            return self.start()
        except BaseException:
            self.close()
            raise

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def environment(self) -> dict[str, str]:
        """What every recvault process of this stack is configured with."""
        env = {k: v for k, v in os.environ.items() if not k.startswith(("RECVAULT_", "AWS_"))}
        o = self.options
        env.update({
            "PYTHONUNBUFFERED": "1",
            "RECVAULT_TWILIO_AUTH_TOKENS": self.token,
            "RECVAULT_TWILIO_ACCOUNT_SID": self.account_sid,
            "RECVAULT_TWILIO_API_BASE_URL": self.sim.base_url,
            "RECVAULT_TWILIO_API_KEY_SID": self.api_key_sid,
            "RECVAULT_TWILIO_API_KEY_SECRET": self.api_key_secret,
            "RECVAULT_BROKER_URL": self.broker_url,
            # Several workers share this host: none of them serves /metrics.
            "RECVAULT_WORKER_METRICS_PORT": "0",
            "RECVAULT_BROKER_TRANSPORT_OPTIONS": json.dumps(self.transport_options),
            "RECVAULT_QUEUE": self.queue,
            "RECVAULT_S3_BUCKET": self.bucket,
            "RECVAULT_S3_ENDPOINT_URL": self.s3.s3_url,
            "RECVAULT_S3_CREATE_BUCKET": "true",
            "RECVAULT_S3_PART_SIZE_MIB": "5",  # S3's minimum: recordings over ~5 MiB go multipart
            "RECVAULT_DATA_DIR": str(self.dir / "data"),
            "RECVAULT_MAX_RETRIES": str(o.max_retries),
            "RECVAULT_RETRY_BACKOFF_MAX_SECONDS": str(o.retry_backoff_max_seconds),
            "RECVAULT_NOT_FOUND_GRACE_SECONDS": str(o.not_found_grace),
            "RECVAULT_DELETE_AFTER_ARCHIVE": str(o.delete_after_archive).lower(),
            "RECVAULT_PRICE_REFRESH_SECONDS": "2",
            "RECVAULT_PUBLISH_TIMEOUT_SECONDS": "0.5",
            "RECVAULT_REDIS_CONNECT_TIMEOUT_SECONDS": "0.5",
            "RECVAULT_LOG_FORMAT": "json",
            "RECVAULT_LOG_LEVEL": "INFO",
            # SeaweedFS accepts any key pair; a real-looking secret lets the log check look for it.
            "AWS_ACCESS_KEY_ID": "AKIA" + secrets.token_hex(8).upper(),
            "AWS_SECRET_ACCESS_KEY": self.aws_secret,
        })
        return env

    # --- addresses --------------------------------------------------------------
    @property
    def broker_url(self) -> str:
        return f"{self.redis.url}/0"

    @property
    def transport_options(self) -> dict[str, str]:
        return {}

    @property
    def ingest_url(self) -> str:
        return f"http://127.0.0.1:{self.ingest_port}"

    @property
    def callback_url(self) -> str:
        return self.ingest_url + CALLBACK_PATH

    # --- processes --------------------------------------------------------------
    @property
    def workers(self) -> list[Component]:
        return self.pool.workers

    def restart_ingest(self) -> None:
        assert self.ingest is not None
        self.ingest.start()

    def log_files(self) -> list[Path]:
        """Every log the stack's processes wrote."""
        files = sorted((self.dir / "logs").glob("*.log"))
        return files + self.broker_log_files() + [self.s3.log_path]

    def broker_log_files(self) -> list[Path]:
        return [self.redis.log_path] if self.redis.log_path else []

    def secrets(self) -> dict[str, str]:
        """Secrets that must never appear in a log line, by name (raw and as Basic credentials)."""
        basic = {
            "Basic credentials (API key)": f"{self.api_key_sid}:{self.api_key_secret}",
            "Basic credentials (Auth Token)": f"{self.account_sid}:{self.token}",
        }
        return {
            "Auth Token": self.token,
            "API key secret": self.api_key_secret,
            "AWS secret key": self.aws_secret,
            **{name: base64.b64encode(value.encode()).decode() for name, value in basic.items()},
        }

    def readyz(self) -> dict:
        """Ingest's readiness answer."""
        with _LOCAL.open(f"{self.ingest_url}/readyz", timeout=5) as response:
            return json.loads(response.read())

    # --- state --------------------------------------------------------------------
    def redis_client(self) -> redis.Redis:
        """A client for the broker (the current master, with Sentinel)."""
        return broker_client(self.broker_url, self.transport_options, socket_timeout=5, socket_connect_timeout=2)

    def ledger(self) -> QueueLedger:
        """How many times ingest queued each event, from the broker's append-only file."""
        return QueueLedger.read(self.redis.dir, self.queue)

    def dead_letters(self) -> dict[str, dict]:
        """The dead-letter store, by letter id ("RE…:completed")."""
        client = self.redis_client()
        try:
            return {key.decode(): json.loads(raw) for key, raw in client.hgetall(DLQ_KEY).items()}
        finally:
            client.close()

    def expected_media(self, recording_sid: str) -> tuple[int, str]:
        """(size, SHA-256) of the file recvault must archive for this simulated recording."""
        return expected_media(self.sim.state, recording_sid)

    def queue_idle(self) -> bool:
        """Nothing waiting on the queue and nothing delivered but unacknowledged."""
        client = self.redis_client()
        try:
            return client.llen(self.queue) == 0 and client.hlen("unacked") == 0
        except redis.RedisError:
            return False
        finally:
            client.close()
