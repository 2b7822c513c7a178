"""`recvault worker`: a Celery worker consuming every queue recvault uses."""

from __future__ import annotations

import argparse
import ctypes
import os
import socket
import time
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from recvault.errors import RecvaultError, StorageUnavailable
from recvault.settings import Settings

if TYPE_CHECKING:
    from recvault.compliance.policy import Policy
    from recvault.storage.base import ObjectStore

HELP = "run an archive worker (Celery) on recvault's queue"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--concurrency", "-c", type=int, default=None,
                        help="archives in flight (threads) or pool processes (prefork); default "
                             "RECVAULT_WORKER_CONCURRENCY, else 24 threads or 2 processes")
    parser.add_argument("--pool", default=None, choices=["threads", "prefork", "solo"],
                        help="Celery execution pool (default RECVAULT_WORKER_POOL, threads)")
    parser.add_argument("--processes", type=int, default=None, choices=range(1, 65), metavar="N",
                        help="worker processes, each with its own pool (default RECVAULT_WORKER_PROCESSES, "
                             "else 2 for threads, 1 otherwise)")
    parser.add_argument("--hostname", "-n", default="recvault@%h", help="worker node name")
    # Set by the supervising `recvault worker` of a group (launch.worker_group) for each of its
    # processes: an inherited pipe to write one byte to once the worker consumes.
    parser.add_argument("--ready-fd", type=int, default=None, help=argparse.SUPPRESS)


# The variable prometheus-client reads, at import, to keep values in files shared by processes.
METRICS_DIR_ENV = "PROMETHEUS_MULTIPROC_DIR"


def metrics_directory(settings: Settings) -> Path:
    """The pool's shared metrics directory, emptied of a previous run's files.

    Set for prometheus-client before anything imports it (it reads the variable only then);
    recvault itself takes the directory from settings.metrics_dir.
    """
    directory = (settings.metrics_dir or settings.data_dir / "worker-metrics").resolve()
    directory.mkdir(parents=True, exist_ok=True)
    for stale in directory.glob("*.db"):
        stale.unlink()
    os.environ[METRICS_DIR_ENV] = str(directory)
    return directory


def record_policy_loaded(policy: Policy, store: ObjectStore, settings: Settings, *, actor: str) -> None:
    """One audit record per worker start: which policy (by version) it archives under."""
    from datetime import UTC, datetime

    from recvault.audit.write import write_system_audit

    details = {"policy_version": policy.version, "policy_file": str(settings.policy_file or "built-in"),
               "rules": [rule.name for rule in policy.all_rules()]}
    now = datetime.now(UTC)
    # Appending to the day's system chain never collides: two workers starting at once take
    # the next entry number each.
    write_system_audit(store, settings.s3_prefix, "policy-loaded", details, now, actor=actor,
                       retention=policy.default_retention(now))


# glibc's mallopt() parameter for the number of malloc arenas.
M_ARENA_MAX = -8
MALLOC_ARENAS = 2


def limit_malloc_arenas() -> None:
    """Two malloc arenas for the whole process instead of up to eight per core.

    glibc gives threads that allocate at once arenas of their own, and memory freed in one
    is not reused by another: with tens of archive threads each passing recording-sized
    buffers, resident memory grows well past what is in use. Set before any thread starts;
    a no-op where the C library is not glibc.
    """
    try:
        ctypes.CDLL(None).mallopt(M_ARENA_MAX, MALLOC_ARENAS)
    except (OSError, AttributeError):
        pass


def run(args: argparse.Namespace, settings: Settings) -> int:
    pool = args.pool or settings.worker_pool
    # The flags win over the environment; the context sizes its connection pools from these.
    settings = settings.model_copy(update={
        "worker_pool": pool, "worker_concurrency": args.concurrency or settings.archives_in_flight(pool)})
    processes = args.processes or settings.worker_process_count(pool)
    if processes > 1:
        return run_group(args, settings, processes)
    if settings.worker_metrics_port:
        settings = settings.model_copy(update={"metrics_dir": metrics_directory(settings)})
    from celery.signals import celeryd_init, worker_process_init

    from recvault.errors import ConfigurationError
    from recvault.logs import configure_logging
    from recvault.queue.celery_factory import create_celery
    from recvault.workers.context import ProcessContext
    from recvault.workers.metrics import serve_metrics
    from recvault.workers.tasks import register_tasks

    configure_logging(settings.log_level, settings.log_format)
    if pool == "threads":
        limit_malloc_arenas()
    # Build at start, fail at start: a bad setting or policy rule stops the worker here with
    # a line naming it (ConfigurationError, exit 2) instead of failing every task later.
    app = create_celery(settings)
    process = ProcessContext(settings, app)
    context = process.build()
    if args.ready_fd is None:  # a group's supervisor checked it already, once for all its processes
        check_broker_tls(settings)
    wait_for_broker(settings)
    store = context.store  # one S3 client in the main process, inherited by every pool child
    ensure_bucket_at_start(store, settings)
    locking = context.policy.rules_that_lock()
    if not store.object_lock_enabled and locking:
        # Every write would carry retention the bucket cannot keep: refuse now, not per recording.
        raise ConfigurationError(
            f"RECVAULT_S3_BUCKET: bucket {settings.s3_bucket!r} has no Object Lock, but policy rule(s) "
            f"{', '.join(repr(name) for name in locking)} ask for retention or a legal hold; use a bucket "
            'created with Object Lock, or set mode = "none" in those rules'
        )
    record_policy_loaded(context.policy, store, settings, actor=args.hostname.replace("%h", socket.gethostname()))
    register_tasks(app, process)
    if settings.worker_metrics_port and settings.metrics_dir is not None:
        serve_metrics(settings.metrics_dir, settings.worker_metrics_host, settings.worker_metrics_port)
    # Each prefork pool child builds its own clients after the fork.
    worker_process_init.connect(lambda **_: process.build_after_fork(), weak=False)
    if args.ready_fd is not None:
        say_ready_on(args.ready_fd)
    argv = [
        "worker", "-Q", settings.queue, "-P", pool, "-c", str(settings.archives_in_flight()),
        "-n", args.hostname, "--loglevel", settings.log_level,
        "--without-gossip", "--without-mingle",
    ]
    if not settings.task_events:
        argv.append("--without-heartbeat")  # worker heartbeats are events too: only for those who listen
    # Celery's worker_main() drops the worker's exit status; keep it, so that a worker that
    # stops on an error (Celery giving up on the broker after its retries) exits non-zero and
    # its supervisor starts it again.
    started: list = []
    celeryd_init.connect(lambda sender, instance, **_: started.append(instance), weak=False)
    app.worker_main(argv)
    return max((worker.exitcode or 0 for worker in started), default=0)


def check_broker_tls(settings: Settings) -> None:
    """TLS to the broker that cannot work (a certificate that does not verify, a missing CA file):
    ConfigurationError naming the setting, before anything waits for the broker (queue.broker)."""
    from recvault.queue.broker import check_tls

    check_tls(settings.broker_url, settings.broker_transport_options,
          socket_timeout=settings.redis_socket_timeout_seconds,
          socket_connect_timeout=settings.redis_connect_timeout_seconds)


def ensure_bucket_at_start(store: ObjectStore, settings: Settings) -> None:
    """The bucket as the worker needs it; S3 out of reach is one line naming RECVAULT_S3_ENDPOINT_URL.

    botocore's own retries bound the time (five attempts, each with a 5 s connect timeout).
    """
    try:
        store.ensure_bucket(create=settings.s3_create_bucket)
    except StorageUnavailable as error:
        raise StorageUnavailable(f"RECVAULT_S3_ENDPOINT_URL: {s3_named(settings)} is unavailable at start "
                                 f"({error})") from None


def s3_named(settings: Settings) -> str:
    """Where S3 is, for a line a person reads: the endpoint without any credentials, or AWS's region."""
    if settings.s3_endpoint_url is None:
        return f"AWS S3 in {settings.s3_region} (no endpoint set)"
    parts = urlsplit(str(settings.s3_endpoint_url))
    host = f"[{parts.hostname}]" if parts.hostname and ":" in parts.hostname else parts.hostname
    return f"S3 at {parts.scheme}://{host}" + (f":{parts.port}" if parts.port else "")


# Pauses between a start-up's attempts to reach the broker: short at first, so a broker that
# comes up with the worker is found at once, then at most this long.
BROKER_PAUSE_FIRST = 0.25
BROKER_PAUSE_LONGEST = 2.0


def wait_for_broker(settings: Settings) -> None:
    """Until the broker answers, for at most RECVAULT_BROKER_START_TIMEOUT_SECONDS; then one line
    naming RECVAULT_BROKER_URL (exit 1), instead of Celery retrying for ever, a line per attempt.

    Only at start: once the worker consumes, Celery reconnects to a broker that went away.
    """
    import redis
    from redis.sentinel import MasterNotFoundError

    from recvault.queue.broker import BrokerAddress

    timeout = settings.broker_start_timeout_seconds
    address = BrokerAddress.parse(settings.broker_url, settings.broker_transport_options)
    client = address.client(socket_timeout=min(settings.redis_socket_timeout_seconds, timeout),
                            socket_connect_timeout=min(settings.redis_connect_timeout_seconds, timeout),
                            fail_fast=True)
    deadline = time.monotonic() + timeout
    pause = BROKER_PAUSE_FIRST
    try:
        while True:
            try:
                client.ping()
                return
            except redis.RedisError as error:
                failure = error
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            time.sleep(min(pause, remaining))
            pause = min(pause * 2, BROKER_PAUSE_LONGEST)
    finally:
        client.close()
    if address.sentinel:
        sentinels = ", ".join(f"{host}:{port}" for host, port in address.hosts)
        where = f"master {address.master_name!r} through the sentinels {sentinels}"
    else:
        where = "{}:{}".format(*address.hosts[0])
    if isinstance(failure, MasterNotFoundError):
        # redis-py's text lists every sentinel client it asked, at length: one line says it.
        said = "no sentinel answered with a master that is up"
    else:
        said = " ".join(str(failure).split())[:300]
    raise RecvaultError(f"RECVAULT_BROKER_URL: the broker ({where}) did not answer within {timeout:g} s "
                        f"(RECVAULT_BROKER_START_TIMEOUT_SECONDS): {said}")


def say_ready_on(fd: int) -> None:
    """Write one byte to `fd` once the worker consumes (Celery's worker_ready), for the group's supervisor."""
    from celery.signals import worker_ready

    def ready(**_: object) -> None:
        try:
            os.write(fd, b"1")
            os.close(fd)
        except OSError:  # the supervisor is gone: it dies with us anyway
            pass

    worker_ready.connect(ready, weak=False)


def node_name(hostname: str, index: int) -> str:
    """A distinct Celery node name for the group's `index`th process: recvault@h → recvault-2@h."""
    name, at, host = hostname.partition("@")
    return f"{name}-{index + 1}{at}{host}"


def refuse_bad_configuration(settings: Settings) -> None:
    """What each worker process would refuse at start (the policy file, Twilio credentials), refused
    here once: ConfigurationError, printed once by the CLI, instead of once per process of a group."""
    from recvault.compliance.policy import Policy

    Policy.from_settings(settings)
    if settings.twilio_account_sid:
        settings.download_credentials(settings.twilio_account_sid)


def run_group(args: argparse.Namespace, settings: Settings, processes: int) -> int:
    """`processes` single-process workers supervised by this one (see launch.worker_group)."""
    from recvault.launch.worker_group import WorkerGroup
    from recvault.logs import configure_logging

    refuse_bad_configuration(settings)
    check_broker_tls(settings)
    configure_logging(settings.log_level, settings.log_format)
    env: dict[str, str] = {}
    if settings.worker_metrics_port:
        # One /metrics for the group, here; the workers count into the shared directory.
        from recvault.workers.metrics import serve_metrics

        directory = metrics_directory(settings)
        serve_metrics(directory, settings.worker_metrics_host, settings.worker_metrics_port)
        env.update({METRICS_DIR_ENV: str(directory), "RECVAULT_METRICS_DIR": str(directory),
                    "RECVAULT_WORKER_METRICS_PORT": "0"})
    pool, concurrency = settings.worker_pool, str(settings.archives_in_flight())
    group = WorkerGroup(processes, lambda index: ["worker", "--processes", "1", "--pool", pool, "-c", concurrency,
                                                  "-n", node_name(args.hostname, index)], env)
    return group.run()
