"""Hostile requests against a real `recvault serve`: odd bytes, oversized headers, slow clients.

Every refusal is a 4xx with a reason (never a 5xx, never a traceback in the log), unsigned
requests cost no more than the signature check, and slow clients are cut off while honest
callbacks keep being answered.
"""

from __future__ import annotations

import asyncio
import os
import socket
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlencode

import pytest
import redis
from multidict import MultiDict

from recvault.ingest.limits import (
    BODY_READ_SECONDS,
    LINGER_SECONDS,
    MAX_HEADER_FIELD_BYTES,
    MAX_HEADERS,
    MAX_PARAMETERS,
)
from recvault.launch.process import Component
from recvault.launch.services import free_port
from recvault.simulator.callbacks import CallbackSender
from tests.faults.rawhttp import RawAnswer, RawRequest, exchange
from tests.faults.slowloris import trickle
from tests.ingest.conftest import FAKE_SIGNATURE, TOKEN, callback_params, queued_payloads, sign

PATH = "/twilio/recording-status"
FORM = "application/x-www-form-urlencoded"
# The server under test cuts connections without complete headers after this many seconds.
IDLE_TIMEOUT = 2
# Allowance for scheduling on a busy machine when timing a cut-off.
SLACK = 2.5


@dataclass(frozen=True)
class Served:
    """A running `recvault serve` that trusts X-Forwarded-* headers, and where it writes."""

    port: int
    queue: str
    redis_url: str
    log: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}{PATH}"

    def log_size(self) -> int:
        return self.log.stat().st_size

    def log_since(self, offset: int) -> str:
        with self.log.open("rb") as handle:
            handle.seek(offset)
            return handle.read().decode(errors="replace")


@pytest.fixture(scope="module")
def served(shared_redis_base: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    directory = tmp_path_factory.mktemp("hostile")
    port, queue = free_port(), f"hostile-{uuid.uuid4().hex[:8]}"
    redis_url = f"{shared_redis_base}/{1 + os.getpid() % 14}"
    env = {**os.environ, "RECVAULT_TWILIO_AUTH_TOKENS": TOKEN, "RECVAULT_BROKER_URL": redis_url,
           "RECVAULT_QUEUE": queue, "RECVAULT_DATA_DIR": str(directory), "RECVAULT_LOG_LEVEL": "INFO",
           "RECVAULT_TRUST_FORWARDED_HEADERS": "true", "RECVAULT_IDLE_TIMEOUT_SECONDS": str(IDLE_TIMEOUT)}
    log = directory / "ingest.log"
    server = Component("ingest", ["serve", "--port", str(port)], env, log_path=log,
                       ready_url=f"http://127.0.0.1:{port}/healthz")
    with server:
        yield Served(port, queue, redis_url, log)
    client = redis.Redis.from_url(redis_url)
    client.delete(queue)
    client.close()


def _form(params: dict[str, str] | list[tuple[str, str]], *, host: str, signature: str | None,
          headers: tuple[tuple[str, str], ...] = ()) -> RawRequest:
    lines = [("Host", host), ("Content-Type", FORM)]
    if signature is not None:
        lines.append(("X-Twilio-Signature", signature))
    body = urlencode(list(params.items()) if isinstance(params, dict) else params).encode()
    return RawRequest("POST", PATH, (*lines, *headers), body)


def _signed(served: Served, params: dict[str, str] | list[tuple[str, str]],
            headers: tuple[tuple[str, str], ...] = ()) -> RawRequest:
    host = f"127.0.0.1:{served.port}"
    signature = sign(f"http://{host}{PATH}", MultiDict(params))
    return _form(params, host=host, signature=signature, headers=headers)


def _refused(answer: RawAnswer, status: int, words: str) -> None:
    assert answer.status == status, answer
    assert words in answer.reason(), answer


def _queued(served: Served) -> list[dict]:
    client = redis.Redis.from_url(served.redis_url)
    try:
        return queued_payloads(client, served.queue)
    finally:
        client.close()


def _no_traceback(served: Served, since: int) -> None:
    log = served.log_since(since)
    assert "Traceback" not in log and '"level": "error"' not in log, log[-2000:]


def test_a_0xff_byte_in_host_is_400_with_a_reason(served: Served) -> None:
    since = served.log_size()
    host = f"127.0.0.1:{served.port}\udcff"  # surrogateescape: the byte 0xff on the wire
    post = _form(callback_params(), host=host, signature=FAKE_SIGNATURE)
    get = RawRequest("GET", f"{PATH}?{urlencode(callback_params())}",
                     (("Host", host), ("X-Twilio-Signature", FAKE_SIGNATURE)))
    for request in (post, get):
        _refused(exchange(served.port, request), 400, "Host")
    _no_traceback(served, since)


def test_a_0xff_byte_in_the_signature_is_403_with_a_reason(served: Served) -> None:
    since = served.log_size()
    for signature in (FAKE_SIGNATURE[:-2] + "\udcff=", "\udcff" * 28, "\udcff"):
        answer = exchange(served.port, _form(callback_params(), host=f"127.0.0.1:{served.port}", signature=signature))
        _refused(answer, 403, "X-Twilio-Signature")
    _no_traceback(served, since)


@pytest.mark.parametrize("header", ["X-Forwarded-Host", "X-Forwarded-Proto"])
def test_a_0xff_byte_in_a_trusted_forwarded_header_is_400(served: Served, header: str) -> None:
    since = served.log_size()
    request = _signed(served, callback_params(), headers=((header, "cb.example\udcff.com"),))
    _refused(exchange(served.port, request), 400, header)
    _no_traceback(served, since)


def test_a_0xff_byte_in_content_type_is_415(served: Served) -> None:
    since = served.log_size()
    request = _signed(served, callback_params())
    request = RawRequest("POST", PATH, tuple((n, v + "\udcff" if n == "Content-Type" else v)
                                             for n, v in request.headers), request.body)
    _refused(exchange(served.port, request), 415, "Content-Type")
    _no_traceback(served, since)


def test_an_unusable_idempotency_token_is_left_out_and_the_signed_callback_kept(served: Served) -> None:
    params = callback_params()
    request = _signed(served, params, headers=(("I-Twilio-Idempotency-Token", "tok\udcffen"),))
    assert exchange(served.port, request).status == 204
    payload = next(p for p in _queued(served) if p["params"]["RecordingSid"] == params["RecordingSid"])
    assert payload["idempotency_token"] is None


def test_more_headers_than_the_limit_are_refused_by_the_parser(served: Served) -> None:
    since = served.log_size()
    padding = tuple((f"X-Pad-{n}", "p") for n in range(MAX_HEADERS + 1))
    answer = exchange(served.port, _form(callback_params(), host="h", signature=FAKE_SIGNATURE, headers=padding))
    assert answer.status in (400, 431), answer
    _no_traceback(served, since)


def test_a_header_past_the_field_limit_is_refused_by_the_parser(served: Served) -> None:
    since = served.log_size()
    huge = (("X-Padding", "p" * (MAX_HEADER_FIELD_BYTES + 1)),)
    answer = exchange(served.port, _form(callback_params(), host="h", signature=FAKE_SIGNATURE, headers=huge))
    assert answer.status in (400, 431), answer
    _no_traceback(served, since)


def test_more_parameters_than_the_bound_are_refused_before_parsing(served: Served) -> None:
    params = callback_params()
    many = list(params.items()) + [(f"P{n}", "x") for n in range(MAX_PARAMETERS)]
    _refused(exchange(served.port, _signed(served, many)), 413, f"more than {MAX_PARAMETERS} parameters")
    query = urlencode(many)
    host = f"127.0.0.1:{served.port}"
    get = RawRequest("GET", f"{PATH}?{query}",
                     (("Host", host), ("X-Twilio-Signature", sign(f"http://{host}{PATH}?{query}", {}))))
    _refused(exchange(served.port, get), 414, f"more than {MAX_PARAMETERS} parameters")
    assert all(p["params"]["RecordingSid"] != params["RecordingSid"] for p in _queued(served))


def test_an_unsigned_request_is_refused_before_its_body_is_read(served: Served) -> None:
    # The body never comes: only a refusal made before reading it can answer at once.
    request = RawRequest("POST", PATH, (("Host", "h"), ("Content-Type", FORM), ("Content-Length", "1000")))
    started = time.monotonic()
    with socket.create_connection(("127.0.0.1", served.port), timeout=BODY_READ_SECONDS - 1) as sock:
        sock.sendall(request.encode())
        first = sock.recv(4096)
    assert time.monotonic() - started < 1
    assert first.startswith(b"HTTP/1.1 403 ") and b"X-Twilio-Signature" in first, first


@pytest.mark.system  # covered again by the fault suite; kept out of the fast tier
async def test_slow_clients_are_cut_off_while_callbacks_are_answered(served: Served) -> None:
    slow_headers = f"POST {PATH} HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ".encode()
    slow_body = (f"POST {PATH} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: {FORM}\r\n"
                 f"X-Twilio-Signature: {FAKE_SIGNATURE}\r\nContent-Length: 1000\r\n\r\n").encode()
    give_up = BODY_READ_SECONDS + LINGER_SECONDS + 2 * SLACK
    slow = [asyncio.create_task(trickle(served.port, head, give_up=give_up))
            for head in [slow_headers] * 4 + [slow_body] * 4]
    await asyncio.sleep(0.5)
    async with CallbackSender(served.url, auth_token=TOKEN, concurrency=8) as sender:
        results = await sender.send_many([sender.prepare(callback_params()) for _ in range(20)])
    cuts = await asyncio.gather(*slow)
    assert [r.http_status for r in results] == [204] * 20
    assert max(r.elapsed for r in results) < 1
    for cut in cuts[:4]:  # no complete request, so nothing to answer: the connection is closed
        assert cut.answer == b"" and cut.closed_after is not None and cut.closed_after < IDLE_TIMEOUT + SLACK, cut
    for cut in cuts[4:]:
        assert cut.status == 408 and b"not received within" in cut.answer, cut
        assert cut.answered_after is not None and cut.answered_after < BODY_READ_SECONDS + SLACK, cut
        assert cut.closed_after is not None and cut.closed_after < BODY_READ_SECONDS + LINGER_SECONDS + SLACK, cut
