"""`recvault up`: the whole service on embedded defaults, in one command.

Starts (or reuses) Redis, an embedded SeaweedFS S3 with an Object Lock bucket, the
ingest server and a worker. Without Twilio credentials configured it also starts the
Twilio simulator, sends it a few demo recordings and shows where they were archived.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import secrets
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from recvault.settings import Settings

if TYPE_CHECKING:
    # run() imports these when it runs, so building the CLI parser stays cheap.
    from recvault.launch.process import ChildProcess
    from recvault.launch.services import RedisServer

HELP = "run Redis, S3 (SeaweedFS), ingest, a worker and the Twilio simulator on embedded defaults"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", default="127.0.0.1", help="ingest address (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8080, help="ingest port (default 8080)")
    parser.add_argument("--s3-port", type=int, default=8333, help="embedded S3 port (default 8333)")
    parser.add_argument("--sim-port", type=int, default=8180, help="Twilio simulator port (default 8180)")
    parser.add_argument("--no-demo", action="store_true", help="do not send demo recordings")
    parser.add_argument("--demo-only", action="store_true", help="send the demo, show it, then stop")


def run(args: argparse.Namespace, settings: Settings) -> int:
    from recvault.launch.process import Component, LaunchError
    from recvault.launch.services import RedisServer, SeaweedFS, free_port
    from recvault.storage.s3 import S3Store

    data = settings.data_dir.resolve()
    data.mkdir(parents=True, exist_ok=True)
    # SIGTERM (from a supervisor or `kill`) stops everything this command started, as Ctrl-C does.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    started: list[ChildProcess] = []  # services and components, stopped in reverse order
    try:
        broker_url = _redis(settings, data, started, RedisServer)
        s3_url = str(settings.s3_endpoint_url) if settings.s3_endpoint_url else None
        if s3_url is None:
            port = args.s3_port if _port_free(args.s3_port) else free_port()
            weed = SeaweedFS(data / "s3", s3_port=port).start()
            started.append(weed)
            s3_url = weed.s3_url
            print(f"embedded S3 (SeaweedFS) at {s3_url}, data in {data / 's3'}", flush=True)
        # Embedded mode creates its bucket (with Object Lock) before anything uses it.
        S3Store.from_settings(settings.model_copy(update={"s3_endpoint_url": s3_url})).ensure_bucket(create=True)
        env = {**os.environ, "RECVAULT_BROKER_URL": broker_url, "RECVAULT_S3_ENDPOINT_URL": s3_url,
               "RECVAULT_DATA_DIR": str(data), "RECVAULT_S3_CREATE_BUCKET": "true"}
        # The status page and API need a token: embedded mode makes one, kept with its data.
        api_token = settings.api_token.get_secret_value() or _embedded_secret(data / "embedded-api-token")
        env["RECVAULT_API_TOKEN"] = api_token
        simulate = not settings.twilio_auth_tokens
        if simulate:
            identity = _embedded_identity(data)
            sim_port = args.sim_port if _port_free(args.sim_port) else free_port()
            sim_url = f"http://127.0.0.1:{sim_port}"
            env.update({"RECVAULT_TWILIO_ACCOUNT_SID": identity["account_sid"],
                        "RECVAULT_TWILIO_AUTH_TOKENS": identity["auth_token"],
                        "RECVAULT_TWILIO_API_BASE_URL": sim_url})
            started.append(Component("Twilio simulator", ["simulate", "serve", "--port", str(sim_port)], env,
                                     ready_url=f"{sim_url}/_sim/recordings").start())
            print(f"Twilio simulator at {sim_url} (account {identity['account_sid']})", flush=True)
        base = f"http://{args.host}:{args.port}"
        started.append(Component("ingest", ["serve", "--host", args.host, "--port", str(args.port)], env,
                                 ready_url=f"{base}/readyz").start())
        started.append(Component("worker", ["worker"], env).start())
        callback = f"{base}/twilio/recording-status"
        print(f"\nrecvault is up. Recording Status Callback URL: {callback}", flush=True)
        print(f"Status page: {base}/status (sign in at {base}/status/login with the API token)", flush=True)
        if not settings.api_token.get_secret_value():
            print(f"API token (embedded mode, kept in {data / 'embedded-api-token'}): {api_token}", flush=True)
        if settings.worker_metrics_port:
            print(f"Worker metrics: http://127.0.0.1:{settings.worker_metrics_port}/metrics", flush=True)
        if simulate and not args.no_demo:
            _demo(callback, env, settings.model_copy(update={"s3_endpoint_url": s3_url}))
            _show_on_status_page(base, api_token)
        if args.demo_only:
            return 0
        print("Ctrl-C stops everything.", flush=True)
        while all(child.running for child in started):
            time.sleep(0.5)
        print("recvault: a component stopped; shutting down", file=sys.stderr)
        return 1
    except LaunchError as error:
        print(f"recvault: {error}", file=sys.stderr)
        return 1
    finally:
        # A second SIGTERM or Ctrl-C while stopping must not cut it short and leave children running.
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        for child in reversed(started):
            child.stop(timeout=15)


def _redis(settings: Settings, data: Path, started: list[ChildProcess], RedisServer: type[RedisServer]) -> str:
    """Use the broker answering at the broker URL, else start a redis-server with AOF in the data dir."""
    import redis

    from recvault.launch.process import LaunchError
    from recvault.queue.broker import broker_client

    url = settings.broker_url
    client = broker_client(url, settings.broker_transport_options, socket_timeout=1, socket_connect_timeout=1,
                           fail_fast=True)
    try:
        client.ping()
        print(f"using Redis at {re.sub(r'//[^@/;]*@', '//', url)}", flush=True)  # without credentials
        return url
    except redis.RedisError as error:
        if urlsplit(url).scheme != "redis":
            # A TLS or Sentinel broker is someone's deployment: never stand in for it.
            raise LaunchError(f"RECVAULT_BROKER_URL: the broker did not answer: {error}") from None
    finally:
        client.close()
    parts = urlsplit(url)
    server = RedisServer(data / "redis", port=parts.port or 6379).start()
    started.append(server)
    print(f"started redis-server (AOF) at {server.url}, data in {data / 'redis'}", flush=True)
    return server.url + (parts.path if parts.path not in ("", "/") else "/0")


def _embedded_secret(path: Path) -> str:
    """A random secret kept in `path` (mode 0600), made on first use."""
    if path.exists():
        return path.read_text().strip()
    secret = secrets.token_hex(24)
    path.write_text(secret)
    path.chmod(0o600)
    return secret


def _show_on_status_page(base: str, token: str) -> None:
    """What the recordings API (the status page's source) says of the demo's recordings."""
    request = urllib.request.Request(f"{base}/api/recordings", headers={"Authorization": f"Bearer {token}"})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            listed = json.loads(response.read())
    except (OSError, ValueError) as error:
        print(f"recvault: the recordings API did not answer: {error}", file=sys.stderr)
        return
    count = len(listed.get("items", []))
    print(f"status page and API: {count} recording(s) listed at {base}/status and {base}/api/recordings",
          flush=True)


def _embedded_identity(data: Path) -> dict[str, str]:
    """A stable simulated Twilio account for this data dir (created on first run)."""
    path = data / "embedded-twilio.json"
    if path.exists():
        return json.loads(path.read_text())
    identity = {"account_sid": "AC" + secrets.token_hex(16), "auth_token": secrets.token_hex(16)}
    path.write_text(json.dumps(identity))
    path.chmod(0o600)
    return identity


def _port_free(port: int) -> bool:
    import socket

    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) != 0


def _demo(callback: str, env: dict[str, str], settings: Settings) -> None:
    """Send a few simulated recordings and show where they were archived."""
    from recvault.storage.s3 import S3Store

    print("\nsending demo recordings from the simulator …", flush=True)
    result = subprocess.run(
        [sys.executable, "-m", "recvault.cli", "simulate", "send", "--to", callback, "--demo"],
        env=env, capture_output=True, text=True, timeout=120,
    )
    print(result.stdout.strip(), flush=True)
    if result.returncode != 0:
        print(result.stderr.strip(), file=sys.stderr)
        return
    store = S3Store.from_settings(settings)
    deadline = time.monotonic() + 60
    keys: list[str] = []
    while time.monotonic() < deadline:
        keys = list(store.list_keys(f"{settings.s3_prefix}metadata/"))
        events = list(store.list_keys(f"{settings.s3_prefix}events/"))
        if len(keys) >= 3 and len(events) >= 3:
            break
        time.sleep(0.5)
    print(f"\narchived in s3://{settings.s3_bucket} at {settings.s3_endpoint_url}:")
    for key in keys:
        document = json.loads(store.get_bytes(key))
        print(f"  {document['media_key']}  {document['media_size']} bytes  sha256 {document['media_sha256'][:16]}…"
              f"  channels {document['channels']}  source {document['source']}")
        print(f"  {key}")
    for key in events:
        print(f"  {key}")
