"""`recvault up`: the whole service on embedded defaults, in one command.

Starts a redis-server of its own (or uses the broker RECVAULT_BROKER_URL names), an embedded
SeaweedFS S3 with an Object Lock bucket, the ingest server, a worker and beat. Without Twilio
credentials configured it also starts the Twilio simulator, sends it a few demo recordings,
waits for those to be archived and moves their accepted callbacks to the archive, so that
`recvault audit verify` covers them at once.

While it runs it leaves RECVAULT_DATA_DIR/env (mode 0600): what every other `recvault` command
run with the same data directory needs to reach these services, read by them on their own
(see recvault.settings.UP_ENV_FILE), and a file other tools can `source`. The children log to
files under RECVAULT_DATA_DIR/logs; the terminal gets a summary, printed last.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import secrets
import shlex
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import IO, TYPE_CHECKING
from urllib.parse import urlsplit

from pydantic import AnyHttpUrl, SecretStr

from recvault.audit import process_key
from recvault.settings import UP_ENV_FILE, Settings, load_settings, warn_unknown_variables

if TYPE_CHECKING:
    # run() imports these when it runs, so building the CLI parser stays cheap.
    from celery import Celery

    from recvault.launch.process import ChildProcess
    from recvault.storage.s3 import S3Store

HELP = "run Redis, S3 (SeaweedFS), ingest, a worker, beat and the Twilio simulator on embedded defaults"
# The seal witness `up` keeps in its data directory when RECVAULT_SEAL_WITNESS is not set.
SEAL_WITNESS_FILE = "seal-witness.jsonl"
# How long the demo's recordings may take to be archived.
DEMO_TIMEOUT_SECONDS = 90
# The RecordingSids `simulate send --demo` lists, one per line.
_DEMO_SID = re.compile(r"^\s+(RE[0-9a-f]{32})\s", re.MULTILINE)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", default="127.0.0.1", help="ingest address (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8080, help="ingest port (default 8080)")
    parser.add_argument("--s3-port", type=int, default=8333, help="embedded S3 port (default 8333)")
    parser.add_argument("--sim-port", type=int, default=8180, help="Twilio simulator port (default 8180)")
    parser.add_argument("--no-demo", action="store_true", help="do not send demo recordings")
    parser.add_argument("--demo-only", action="store_true", help="send the demo, show it, then stop")
    # `up` reads its settings without the file it writes for the other commands (a previous run's).
    parser.set_defaults(needs_settings=False)


def run(args: argparse.Namespace, settings: Settings | None) -> int:
    from recvault.launch.process import Component, LaunchError
    from recvault.launch.services import SeaweedFS, free_port
    from recvault.storage.s3 import LOCAL_ACCESS_KEY

    if settings is None:
        warn_unknown_variables()
        settings = load_settings(up_env_file=False)
    data = settings.data_dir.resolve()
    data.mkdir(parents=True, exist_ok=True)
    logs = data / "logs"
    try:
        lock = _lock(data)
    except LaunchError as error:
        print(f"recvault: {error}", file=sys.stderr)
        return 1
    env_file = data / UP_ENV_FILE
    env_file.unlink(missing_ok=True)  # a previous run's, stopped without removing it
    # SIGTERM (from a supervisor or `kill`) stops everything this command started, as Ctrl-C does.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    started: list[ChildProcess] = []  # services and components, stopped in reverse order
    try:
        broker_url = _redis(settings, data, started)
        s3_url = str(settings.s3_endpoint_url).rstrip("/") if settings.s3_endpoint_url else None
        embedded_s3 = s3_url is None
        if s3_url is None:
            port = args.s3_port if _port_free(args.s3_port) else free_port()
            weed = SeaweedFS(data / "s3", s3_port=port).start()
            started.append(weed)
            s3_url = weed.s3_url
            print(f"embedded S3 (SeaweedFS) at {s3_url}, data in {data / 's3'}", flush=True)
        stack = settings.model_copy(update={"broker_url": broker_url, "s3_endpoint_url": AnyHttpUrl(s3_url),
                                            "data_dir": data})
        # Entries are authenticated in embedded mode too: a key kept with its data, outside the bucket.
        audit_key = {} if settings.audit_key.get_secret_value() else _embedded_audit_key(
            data / "embedded-audit-key.json")
        if audit_key:
            stack = stack.model_copy(update={"audit_key": SecretStr(audit_key["RECVAULT_AUDIT_KEY"]),
                                             "audit_key_since": datetime.fromisoformat(
                                                 audit_key["RECVAULT_AUDIT_KEY_SINCE"])})
        process_key.use_settings(stack)
        # Embedded mode creates its bucket (with Object Lock) before anything uses it, and sets it
        # up as `recvault init-bucket` would, so `init-bucket --check` finds nothing to change.
        store = _store(stack)
        store.ensure_bucket(create=True)
        if embedded_s3:
            from recvault.commands.init_bucket import bucket_setup
            from recvault.compliance.policy import Policy

            store.init_bucket(bucket_setup(stack, Policy.from_settings(stack)))
        # What the children get on top of this environment, and (mostly) what the file says.
        shared = {"RECVAULT_BROKER_URL": broker_url, "RECVAULT_S3_ENDPOINT_URL": s3_url,
                  "RECVAULT_DATA_DIR": str(data), **audit_key}
        if not settings.seal_witness:
            # Embedded mode keeps a witness of the seals beside its data, outside the bucket.
            shared["RECVAULT_SEAL_WITNESS"] = str(data / SEAL_WITNESS_FILE)
            stack = stack.model_copy(update={"seal_witness": shared["RECVAULT_SEAL_WITNESS"]})
        env = {**os.environ, **shared, "RECVAULT_S3_CREATE_BUCKET": "true"}
        # The status page and API need a token: embedded mode makes one, kept with its data.
        embedded_token = not settings.api_token.get_secret_value()
        api_token = settings.api_token.get_secret_value() or _embedded_secret(data / "embedded-api-token")
        env["RECVAULT_API_TOKEN"] = api_token
        simulate = not settings.twilio_auth_tokens
        if simulate:
            identity = _embedded_identity(data)
            sim_port = args.sim_port if _port_free(args.sim_port) else free_port()
            sim_url = f"http://127.0.0.1:{sim_port}"
            twilio = {"RECVAULT_TWILIO_ACCOUNT_SID": identity["account_sid"],
                      "RECVAULT_TWILIO_AUTH_TOKENS": identity["auth_token"],
                      "RECVAULT_TWILIO_API_BASE_URL": sim_url}
            env.update(twilio)
            shared.update(twilio)
            stack = stack.model_copy(update={
                "twilio_account_sid": identity["account_sid"],
                "twilio_auth_tokens": [SecretStr(identity["auth_token"])],
                "twilio_api_base_url": AnyHttpUrl(sim_url)})
            started.append(Component("Twilio simulator", ["simulate", "serve", "--port", str(sim_port)], env,
                                     log_path=logs / "simulator.log",
                                     ready_url=f"{sim_url}/_sim/recordings").start())
            print(f"Twilio simulator at {sim_url} (account {identity['account_sid']})", flush=True)
        base = f"http://{args.host}:{args.port}"
        started.append(Component("ingest", ["serve", "--host", args.host, "--port", str(args.port)], env,
                                 log_path=logs / "ingest.log", ready_url=f"{base}/readyz").start())
        started.append(Component("worker", ["worker"], env, log_path=logs / "worker.log",
                                 ready=_workers_answer(stack)).start())
        # Beat schedules the ledger flush (every 15 minutes), the seals, reconcile and price
        # sweep; the worker runs them.
        started.append(Component("beat", ["beat"], env, log_path=logs / "beat.log").start())
        print(f"ingest, worker and beat started; their logs are in {logs}", flush=True)

        # Everything a command in another terminal needs, for as long as this runs.
        extra: dict[str, str] = {}
        if embedded_token:
            shared["RECVAULT_API_TOKEN"] = api_token
        if embedded_s3:
            access_key, secret_key = LOCAL_ACCESS_KEY
            extra.update({"AWS_ACCESS_KEY_ID": access_key, "AWS_SECRET_ACCESS_KEY": secret_key,
                          "AWS_ENDPOINT_URL_S3": s3_url, "AWS_DEFAULT_REGION": settings.s3_region})
        _write_env_file(env_file, {**shared, **_where(settings)}, extra)

        demo: list[str] = []
        archived = True
        if simulate and not args.no_demo:
            demo, archived = _demo(f"{base}/twilio/recording-status", env, stack)
        _summary(args, settings, base, api_token, data, env_file, demo)
        if args.demo_only:
            return 0 if archived else 1
        print("Ctrl-C stops everything.", flush=True)
        while all(child.running for child in started):
            time.sleep(0.5)
        stopped = next(child for child in started if not child.running)
        print(f"recvault: {stopped.name} stopped (log {stopped.log_path}); shutting down", file=sys.stderr)
        return 1
    except LaunchError as error:
        print(f"recvault: {error}", file=sys.stderr)
        return 1
    finally:
        # A second SIGTERM or Ctrl-C while stopping must not cut it short and leave children running.
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        if started:
            print("recvault up: stopping (ingest and the worker finish what they hold first) …",
                  file=sys.stderr, flush=True)
        for child in reversed(started):
            child.stop(timeout=15)
        if started:
            print("recvault up: stopped", file=sys.stderr, flush=True)
        # The services it describes are gone: commands must not be pointed at them any more.
        env_file.unlink(missing_ok=True)
        lock.close()


def _lock(data: Path) -> IO[str]:
    """Hold RECVAULT_DATA_DIR/up.lock for as long as this runs: one `up` per data directory."""
    import fcntl

    from recvault.launch.process import LaunchError

    handle = (data / "up.lock").open("a+")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        handle.close()
        raise LaunchError(f"another `recvault up` is running with the data directory {data}; "
                          "stop it first, or give this one a RECVAULT_DATA_DIR of its own") from None
    return handle


def _redis(settings: Settings, data: Path, started: list[ChildProcess]) -> str:
    """The broker URL: a redis-server of its own, with AOF, in the data dir, on a free port.

    Only a RECVAULT_BROKER_URL that is set (environment or .env) names another broker: used
    if it answers, else (a plain redis:// URL) stood in for by a redis-server on its port.
    """
    import redis

    from recvault.launch.process import LaunchError
    from recvault.launch.services import RedisServer, free_port
    from recvault.queue.broker import broker_client

    url = settings.broker_url
    if "broker_url" not in settings.model_fields_set:
        # Never the Redis someone runs on the default port: that one holds their data.
        server = RedisServer(data / "redis", port=free_port()).start()
        started.append(server)
        print(f"started redis-server (AOF) at {server.url}, data in {data / 'redis'}", flush=True)
        return f"{server.url}/0"
    client = broker_client(url, settings.broker_transport_options, socket_timeout=1, socket_connect_timeout=1,
                           fail_fast=True)
    try:
        client.ping()
        print(f"using Redis at {_without_credentials(url)}", flush=True)
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


def _without_credentials(url: str) -> str:
    return re.sub(r"//[^@/;]*@", "//", url)


def _store(settings: Settings) -> S3Store:
    from recvault.storage.s3 import S3Store

    return S3Store.from_settings(settings)


def _workers_answer(settings: Settings) -> Callable[[], bool]:
    """A probe: whether every process `recvault worker` starts answers a Celery ping."""
    from recvault.commands.worker import node_name
    from recvault.queue.celery_factory import create_celery

    hostname = f"recvault@{socket.gethostname()}"
    count = settings.worker_process_count()
    names = [node_name(hostname, index) for index in range(count)] if count > 1 else [hostname]
    app: Celery = create_celery(settings)

    def ready() -> bool:
        try:
            replies = app.control.ping(destination=names, timeout=1.0, limit=len(names))
        except Exception:  # not up yet, whatever the broker client says
            return False
        return set(names) <= {name for reply in replies or [] for name in reply}

    return ready


def _where(settings: Settings) -> dict[str, str]:
    """The settings that say where the archive is and how it is kept, when set for this run."""
    found = {"RECVAULT_S3_BUCKET": settings.s3_bucket, "RECVAULT_S3_REGION": settings.s3_region}
    if settings.s3_prefix:
        found["RECVAULT_S3_PREFIX"] = settings.s3_prefix
    if settings.policy_file is not None:
        found["RECVAULT_POLICY_FILE"] = str(settings.policy_file.resolve())
    if settings.broker_transport_options:
        found["RECVAULT_BROKER_TRANSPORT_OPTIONS"] = json.dumps(settings.broker_transport_options)
    if settings.queue != Settings.model_fields["queue"].default:
        found["RECVAULT_QUEUE"] = settings.queue
    return found


def _write_env_file(path: Path, settings: dict[str, str], others: dict[str, str]) -> None:
    """RECVAULT_DATA_DIR/env: `export NAME='value'` lines, mode 0600, replaced in one step."""
    lines = [
        "# Written by `recvault up` while it runs, removed when it stops: how to reach what it started.",
        "# recvault commands using this data directory read it themselves (a variable set in the",
        "# environment wins); for other tools: source this file.",
        *_exports(settings),
    ]
    if others:
        lines += ["# For other tools (aws); recvault does not read these.", *_exports(others)]
    partial = path.with_name(path.name + ".partial")
    descriptor = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w") as handle:
        handle.write("\n".join(lines) + "\n")
    partial.chmod(0o600)
    partial.replace(path)


# Characters a shell treats specially between double quotes, or python-dotenv does not read as written.
_NOT_IN_DOUBLE_QUOTES = set('"$`\\!\n')


def _exports(values: dict[str, str]) -> list[str]:
    """`export NAME=value` lines that a shell and python-dotenv (recvault's reader) read alike."""
    lines = []
    for name, value in values.items():
        if "'" not in value and "\n" not in value and "\\\\" not in value:
            lines.append(f"export {name}='{value}'")
        elif not _NOT_IN_DOUBLE_QUOTES & set(value):
            lines.append(f'export {name}="{value}"')
        else:
            print(f"recvault: {name} is not written to {UP_ENV_FILE}: its value has quotes and shell "
                  "characters a shell and recvault would read differently; set it in the other terminal too",
                  file=sys.stderr)
    return lines


def _embedded_secret(path: Path) -> str:
    """A random secret kept in `path` (mode 0600), made on first use."""
    if path.exists():
        return path.read_text().strip()
    secret = secrets.token_hex(24)
    path.write_text(secret)
    path.chmod(0o600)
    return secret


def _embedded_audit_key(path: Path) -> dict[str, str]:
    """RECVAULT_AUDIT_KEY and RECVAULT_AUDIT_KEY_SINCE kept in `path` (mode 0600), made on first use: entries
    this data directory holds from before then carry no MAC."""
    if not path.exists():
        made = {"RECVAULT_AUDIT_KEY": secrets.token_hex(32),
                "RECVAULT_AUDIT_KEY_SINCE": datetime.now(UTC).replace(microsecond=0).isoformat()}
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(descriptor, "w") as handle:
            json.dump(made, handle)
    return {name: str(value) for name, value in json.loads(path.read_text()).items()}


def _embedded_identity(data: Path) -> dict[str, str]:
    """A stable simulated Twilio account for this data dir (created on first run)."""
    path = data / "embedded-twilio.json"
    if path.exists():
        return dict(json.loads(path.read_text()))
    identity = {"account_sid": "AC" + secrets.token_hex(16), "auth_token": secrets.token_hex(16)}
    path.write_text(json.dumps(identity))
    path.chmod(0o600)
    return identity


def _port_free(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) != 0


def _days_around_now() -> list[str]:
    today = datetime.now(UTC).date()
    return [(today + timedelta(days=n)).isoformat() for n in (-1, 0, 1)]


def _demo(callback: str, env: dict[str, str], settings: Settings) -> tuple[list[str], bool]:
    """Send the simulator's demo recordings, wait for those, flush their ledger rows; show them.

    Returns the demo's RecordingSids and whether every one of them was archived.
    """
    from recvault import layout

    print("sending demo recordings from the simulator …", flush=True)
    result = subprocess.run(
        [sys.executable, "-m", "recvault.cli", "simulate", "send", "--to", callback, "--demo"],
        env=env, capture_output=True, text=True, timeout=120,
    )
    sent = result.stdout.strip("\n").rstrip()
    if result.returncode != 0:
        print(sent, flush=True)
        print(f"recvault: the demo could not be sent: {result.stderr.strip()}", file=sys.stderr)
        return [], False
    sids = _DEMO_SID.findall(result.stdout)
    store = _store(settings)
    prefix = settings.s3_prefix
    print(f"waiting for the worker to archive {len(sids)} recording(s) …", flush=True)
    documents: dict[str, str] = {}
    events: dict[str, str] = {}
    deadline = time.monotonic() + DEMO_TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        for day in _days_around_now():
            for key in store.list_keys(layout.partition_prefix(prefix, layout.METADATA, day)):
                if (parsed := layout.parse_metadata_key(prefix, key)) and parsed[1] in sids:
                    documents[parsed[1]] = key
            for key in store.list_keys(layout.partition_prefix(prefix, layout.EVENTS, day)):
                if (found := layout.parse_event_key(prefix, key)) and found[1] in sids:
                    events[f"{found[1]}-{found[2]}"] = key
        if len(documents) == len(sids) and all(f"{sid}-in-progress" in events for sid in sids):
            break
        time.sleep(0.5)
    archived = len(documents) == len(sids)
    flushed = _flush_ledger(settings) if archived else None
    print(f"\n{sent}")
    print(f"\narchived in s3://{settings.s3_bucket} at {store.endpoint_url}:")
    for sid in sids:
        if sid not in documents:
            continue
        document = json.loads(store.get_bytes(documents[sid]))
        print(f"  {document['media_key']}  {document['media_size']} bytes  sha256 {document['media_sha256'][:16]}…"
              f"  channels {document['channels']}  source {document['source']}")
        print(f"  {documents[sid]}")
    for key in sorted(events.values()):
        print(f"  {key}")
    if not archived:
        missing = [sid for sid in sids if sid not in documents]
        print(f"recvault: {len(missing)} demo recording(s) not archived within {DEMO_TIMEOUT_SECONDS} s: "
              f"{' '.join(missing)}; see {settings.data_dir / 'logs' / 'worker.log'}", file=sys.stderr)
    if flushed is not None:
        print(f"accepted-callback ledger: {flushed} to s3://{settings.s3_bucket}/{prefix}{layout.AUDIT_ACCEPTED} "
              "(beat does this every 15 minutes)")
    return sids, archived


def _flush_ledger(settings: Settings) -> str | None:
    """Move the accepted-callback ledger to S3 and seal finished days now, as beat's jobs do.

    What the flush says, or None (and a warning) if it failed: beat's next flush covers it then.
    """
    from recvault.queue.celery_factory import create_celery
    from recvault.workers.beat_tasks import flush_ledger, seal_periods
    from recvault.workers.context import WorkerContext

    try:
        context = WorkerContext.build(settings, create_celery(settings))
        try:
            seal_periods(context)
            return flush_ledger(context)
        finally:
            context.publisher.close()
    except Exception as error:  # the demo's last step: the service runs on without it
        print(f"recvault: the accepted-callback ledger was not moved to S3 now ({type(error).__name__}: {error}); "
              "beat moves it within 15 minutes", file=sys.stderr)
        return None


def _show_on_status_page(base: str, token: str) -> str:
    """What the recordings API (the status page's source) says: a line for the summary."""
    request = urllib.request.Request(f"{base}/api/recordings", headers={"Authorization": f"Bearer {token}"})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            listed = json.loads(response.read())
    except (OSError, ValueError) as error:
        return f"the recordings API did not answer: {error}"
    count = len(listed.get("items", []))
    return f"status page and API: {count} recording(s) listed at {base}/status and {base}/api/recordings"


def _activate_script() -> str | None:
    """How to put this recvault on PATH in another shell: its virtualenv's activate script, if any."""
    if sys.prefix == sys.base_prefix:
        return None  # installed outside a virtualenv: `recvault` is on PATH already
    script = Path(sys.prefix) / "bin" / "activate"
    if not script.exists():
        return None
    try:
        return shlex.quote(str(script.relative_to(Path.cwd())))
    except ValueError:
        return shlex.quote(str(script))


def _summary(args: argparse.Namespace, settings: Settings, base: str, api_token: str, data: Path,
             env_file: Path, demo: list[str]) -> None:
    """The last thing `up` prints: where everything is, and what to type in another terminal."""
    # With RECVAULT_OPS_PORT the operations routes are served only on a listener of their own.
    ops = f"http://{settings.ops_host or args.host}:{settings.ops_port}" if settings.ops_port else base
    if demo:
        print(_show_on_status_page(ops, api_token))
    print(f"\nrecvault is up. Recording Status Callback URL: {base}/twilio/recording-status")
    print(f"Status page: {ops}/status (sign in at {ops}/status/login with the API token)")
    if not settings.api_token.get_secret_value():
        print(f"API token (embedded mode, kept in {data / 'embedded-api-token'}): {api_token}")
    if settings.worker_metrics_port:
        print(f"Worker metrics: http://127.0.0.1:{settings.worker_metrics_port}/metrics")
    print(f"Logs: {data / 'logs'}")
    if args.demo_only:
        sys.stdout.flush()
        return
    today = datetime.now(UTC).date().isoformat()
    if "data_dir" in settings.model_fields_set:
        print(f"\nin another terminal (recvault reads {env_file} by itself):")
        print(f"  export RECVAULT_DATA_DIR={shlex.quote(str(data))}")
    else:
        print(f"\nin another terminal, in this folder (recvault reads {settings.data_dir / UP_ENV_FILE} by itself):")
    activate = _activate_script()
    if activate:
        print(f"  . {activate}      # puts recvault on PATH")
    print("  recvault audit verify")
    print("  recvault hold list")
    print("  recvault dlq list")
    if settings.twilio_account_sid or not settings.twilio_auth_tokens:
        print(f"  recvault reconcile --from {today} --to {today}")
    if demo:
        print(f"  recvault audit show {demo[0]}")
        print(f"  recvault policy explain --recording {demo[0]}")
    print(f"other tools (aws, redis-cli, curl): source {shlex.quote(str(env_file))}", flush=True)
