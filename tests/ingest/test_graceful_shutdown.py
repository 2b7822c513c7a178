"""A real `recvault serve` told to stop (SIGTERM): it stops accepting, finishes what is in flight, queues it."""

from __future__ import annotations

import os
import signal
import socket
import time
from urllib.parse import urlencode

import pytest
import redis

from recvault.launch.process import Component
from recvault.launch.services import free_port
from tests.ingest.conftest import TOKEN, callback_params, sign
from tests.ingest.test_serve_command import _children

IN_FLIGHT = 3


def _connect(port: int) -> socket.socket:
    return socket.create_connection(("127.0.0.1", port), timeout=5)


def _refused(port: int) -> bool:
    try:
        _connect(port).close()
    except ConnectionRefusedError:
        return True
    return False


def _half_sent(port: int) -> tuple[socket.socket, bytes]:
    """A signed callback whose headers and first half of the body are sent; returns the rest."""
    url = f"http://127.0.0.1:{port}/twilio/recording-status"
    params = callback_params()
    body = urlencode(params).encode()
    head = (f"POST /twilio/recording-status HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
            f"Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {len(body)}\r\n"
            f"X-Twilio-Signature: {sign(url, params)}\r\n\r\n").encode()
    client = _connect(port)
    client.sendall(head + body[: len(body) // 2])
    return client, body[len(body) // 2:]


@pytest.mark.parametrize("processes", [1, 2])
def test_sigterm_stops_accepting_and_drains_requests_in_flight(redis_url, tmp_path, processes) -> None:
    port = free_port()
    env = {**os.environ, "RECVAULT_TWILIO_AUTH_TOKENS": TOKEN, "RECVAULT_BROKER_URL": redis_url,
           "RECVAULT_DATA_DIR": str(tmp_path), "RECVAULT_LOG_LEVEL": "DEBUG"}
    server = Component("ingest", ["serve", "--port", str(port), "--processes", str(processes)], env,
                       log_path=tmp_path / "ingest.log", ready_url=f"http://127.0.0.1:{port}/healthz").start()
    clients: list[socket.socket] = []
    try:
        children = _children(server.pid) if processes > 1 else []
        idle = _connect(port)  # a keep-alive connection with nothing in flight
        in_flight = [_half_sent(port) for _ in range(IN_FLIGHT)]
        clients += [idle, *(client for client, _ in in_flight)]
        time.sleep(0.5)  # the handlers are running, waiting for the rest of their bodies

        assert server.pid is not None
        os.kill(server.pid, signal.SIGTERM)  # what Kubernetes or systemd sends: to the main process only
        deadline = time.monotonic() + 3
        while not _refused(port):
            assert time.monotonic() < deadline, "ingest still accepts connections after SIGTERM"
            time.sleep(0.05)
        assert server.running  # not accepting, still finishing

        for client, rest in in_flight:
            client.sendall(rest)
        answers = [client.recv(4096) for client, _ in in_flight]
        assert all(answer.startswith(b"HTTP/1.1 204") for answer in answers), answers
        assert idle.recv(4096) == b""  # the idle connection was closed, not answered
        assert server.process is not None and server.process.wait(15) == 0
    finally:
        for client in clients:
            client.close()
        server.stop()
    assert all(not os.path.exists(f"/proc/{pid}") for pid in children)
    assert redis.Redis.from_url(redis_url).llen("recvault") == IN_FLIGHT  # every 204 is on the queue
    assert "Traceback" not in (tmp_path / "ingest.log").read_text()
