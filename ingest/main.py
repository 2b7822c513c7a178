"""Running the ingest service: one process, or several sharing one listening socket.

One CPython process tops out around one core (handler and hand-off thread share the
GIL), so `--processes N` pre-forks N servers on a socket bound once by the parent, like
gunicorn does. Prometheus metrics then live in a shared directory so `/metrics` on any
process reports the sum over all of them.

With RECVAULT_OPS_PORT set, the operations routes listen on a socket of their own, bound by the
parent too and served by every process.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import socket
import sys
import time

from recvault.settings import Settings

# The variable prometheus_client reads to keep metric values in files shared by processes.
METRICS_DIR_ENV = "PROMETHEUS_MULTIPROC_DIR"
# Connections waiting to be accepted, per listening socket (Twilio bursts at call ends).
BACKLOG = 2048


def event_loop() -> asyncio.AbstractEventLoop:
    """uvloop when installed: its loop and transports cut aiohttp's per-request cost."""
    try:
        import uvloop
    except ImportError:
        return asyncio.new_event_loop()
    return uvloop.new_event_loop()


def run_server(settings: Settings, *, host: str, port: int, processes: int = 1) -> int:
    """Serve until SIGTERM/SIGINT, then stop gracefully (ingest/graceful.py); returns the exit status."""
    ops_host = settings.ops_host or host
    if settings.ops_port is not None and settings.ops_port == port and _same_address(ops_host, host):
        print(f"recvault: RECVAULT_OPS_PORT ({port}) must differ from the callback port", file=sys.stderr)
        return 1
    try:
        sock = _listen(host, port)
    except OSError as error:
        print(f"recvault: cannot listen on {host}:{port}: {error.strerror}", file=sys.stderr)
        return 1
    ops_sock = None
    if settings.ops_port is not None:
        try:
            ops_sock = _listen(ops_host, settings.ops_port)
        except OSError as error:
            sock.close()
            print(f"recvault: cannot listen on {ops_host}:{settings.ops_port} (RECVAULT_OPS_PORT): {error.strerror}",
                  file=sys.stderr)
            return 1
    print(f"recvault ingest listening on http://{host}:{port}/twilio/recording-status"
          + (f" ({processes} processes)" if processes > 1 else ""), file=sys.stderr, flush=True)
    if ops_sock is not None:
        print(f"recvault operations routes listening on http://{ops_host}:{settings.ops_port}/status only",
              file=sys.stderr, flush=True)
    if processes == 1:
        _serve_forever(settings, sock, ops_sock)
        return 0
    metrics_dir = settings.data_dir.resolve() / "metrics"
    shutil.rmtree(metrics_dir, ignore_errors=True)
    metrics_dir.mkdir(parents=True)
    # prometheus_client decides at import whether values live in shared files, from this
    # variable only: set it before the servers import it. recvault itself reads the
    # directory from settings.
    os.environ[METRICS_DIR_ENV] = str(metrics_dir)
    return _supervise(settings.model_copy(update={"metrics_dir": metrics_dir}), sock, ops_sock, processes)


def _same_address(one: str, other: str) -> bool:
    """Whether two listen addresses would collide on one port (a wildcard collides with anything)."""
    wildcards = {"0.0.0.0", "::", ""}
    return one == other or one in wildcards or other in wildcards


def _listen(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(BACKLOG)
    sock.set_inheritable(True)
    return sock


def _serve_forever(settings: Settings, sock: socket.socket, ops_sock: socket.socket | None) -> None:
    from recvault.ingest.app import create_app
    from recvault.ingest.graceful import serve
    from recvault.ingest.server import quiet_parser_refusals

    quiet_parser_refusals()
    with asyncio.Runner(loop_factory=event_loop) as runner:
        runner.run(serve(create_app(settings, ops_socket=ops_sock), sock, settings, backlog=BACKLOG))


def _supervise(settings: Settings, sock: socket.socket, ops_sock: socket.socket | None, processes: int) -> int:
    """Fork the servers, forward SIGTERM/SIGINT, and stop all when one dies."""
    children = [_fork(settings, sock, ops_sock) for _ in range(processes)]
    # The servers hold the sockets now. Were the parent to keep its copies open, the ports would
    # still take connections (into the backlog, never answered) after the servers stop accepting.
    sock.close()
    if ops_sock is not None:
        ops_sock.close()
    stopping = False

    def forward(signum: int, _frame: object) -> None:
        nonlocal stopping
        stopping = True
        for pid in children:
            _signal(pid, signal.SIGTERM)

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    status = 0
    while children:
        pid, code = os.wait()
        if pid not in children:
            continue
        children.remove(pid)
        _mark_dead(pid)
        if not stopping:
            # A server died on its own: stop the rest so the supervisor (systemd, Kubernetes)
            # restarts the whole service rather than leaving it half-sized.
            print(f"recvault: ingest process {pid} exited ({code}); stopping", file=sys.stderr)
            status = 1
            forward(signal.SIGTERM, None)
    time.sleep(0)  # let pending output flush before the parent exits
    return status


def _fork(settings: Settings, sock: socket.socket, ops_sock: socket.socket | None) -> int:
    pid = os.fork()
    if pid == 0:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        try:
            _serve_forever(settings, sock, ops_sock)
        finally:
            os._exit(0)
    return pid


def _signal(pid: int, signum: int) -> None:
    try:
        os.kill(pid, signum)
    except ProcessLookupError:
        pass


def _mark_dead(pid: int) -> None:
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(pid)
