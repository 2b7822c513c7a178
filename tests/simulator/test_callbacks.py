"""Callbacks as Twilio sends them: parameters, signatures checked by the official validator, retries."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from urllib.parse import parse_qsl, urlsplit

import pytest
from twilio.request_validator import RequestValidator

from recvault.events import KNOWN_SOURCES, RecordingStatusEvent
from recvault.simulator.callbacks import CallbackSender, callback_sequence, summarize
from recvault.simulator.recordings import SimRecording
from recvault.simulator.server import SimServer
from tests.simulator.support import Receiver, free_port, running_receiver


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    async with running_receiver() as target:
        yield target


@pytest.mark.parametrize("channels", [1, 2])
@pytest.mark.parametrize("source", sorted(KNOWN_SOURCES))
async def test_post_sequence_is_signed_and_realistic(sim: SimServer, sim_account, callback_sender,
                                                     receiver, source, channels) -> None:
    conference = "Conference" in source
    rec = sim.create_recording(channels=channels, source=source, duration=42,
                               **({"conference_sid": "CF" + "c" * 32} if conference else {}))
    for params in callback_sequence(rec, "completed", api_base=sim.base_url):
        result = await callback_sender.send(params, url=receiver.url)
        assert result.http_status == 204 and not result.retried and result.ok
    assert [c["params"]["RecordingStatus"] for c in receiver.calls] == ["in-progress", "completed"]
    validator = RequestValidator(sim_account.token)
    for call in receiver.calls:
        params, headers = call["params"], call["headers"]
        assert validator.validate(call["url"], params, headers["X-Twilio-Signature"])
        assert not RequestValidator("another-token").validate(call["url"], params, headers["X-Twilio-Signature"])
        assert headers["User-Agent"] == "TwilioProxy/1.1"
        assert headers["Content-Type"] == "application/x-www-form-urlencoded; charset=utf-8"
        assert headers["I-Twilio-Idempotency-Token"]
        event = RecordingStatusEvent.from_params(params)  # recvault's own model accepts it
        assert event.recording_url == sim.recording_url(rec)
        assert params["RecordingChannels"] == str(channels) and params["RecordingSource"] == source
        assert ("CallSid" in params) is not conference and ("ConferenceSid" in params) is conference
    in_progress, completed = (c["params"] for c in receiver.calls)
    assert "RecordingDuration" not in in_progress and completed["RecordingDuration"] == "42"
    assert completed["ErrorCode"] == "0" and "EncryptionDetails" not in completed


async def test_get_callbacks_sign_the_query_string(sim: SimServer, sim_account, callback_sender, receiver) -> None:
    rec = sim.create_recording(channels=2)
    url = receiver.url + "?tenant=a%20b&note='x'+y"
    for params in callback_sequence(rec, api_base=sim.base_url):
        assert (await callback_sender.send(params, url=url, method="GET")).http_status == 204
    validator = RequestValidator(sim_account.token)
    for call, expected in zip(receiver.calls, callback_sequence(rec, api_base=sim.base_url), strict=True):
        assert call["method"] == "GET" and call["params"] == {}
        assert call["url"].startswith(url + "&")
        assert validator.validate(call["url"], {}, call["headers"]["X-Twilio-Signature"])
        assert "Content-Type" not in call["headers"]
        assert dict(parse_qsl(urlsplit(call["url"]).query)) == {"tenant": "a b", "note": "'x' y", **expected}


@pytest.mark.parametrize(("outcome", "duration", "code"), [("absent", 0, "16101"), ("absent", 3, "16102"),
                                                           ("failed", 30, "16105")])
async def test_absent_and_failed_carry_twilio_error_codes(sim: SimServer, outcome, duration, code) -> None:
    rec = sim.create_recording(status=outcome, duration=duration)
    steps = callback_sequence(rec, outcome, api_base=sim.base_url)
    assert [s["RecordingStatus"] for s in steps] == ["in-progress", outcome]
    assert steps[-1]["ErrorCode"] == code and "RecordingDuration" not in steps[-1]
    RecordingStatusEvent.from_params(steps[-1])


async def test_encrypted_completed_carries_encryption_details(sim: SimServer) -> None:
    rec = sim.create_recording(encrypted=True)
    completed = callback_sequence(rec, api_base=sim.base_url, in_progress=False)[0]
    assert json.loads(completed["EncryptionDetails"]) == rec.encryption_details
    assert RecordingStatusEvent.from_params(completed).encryption_details == rec.encryption_details


async def test_5xx_is_never_retried(sim: SimServer, callback_sender, receiver) -> None:
    receiver.answer = 503
    params = callback_sequence(sim.create_recording(), api_base=sim.base_url, in_progress=False)[0]
    result = await callback_sender.send(params, url=receiver.url)
    assert (result.http_status, result.retried, len(receiver.calls)) == (503, False, 1)


async def test_refused_connection_is_retried_once(sim: SimServer, callback_sender) -> None:
    params = callback_sequence(sim.create_recording(), api_base=sim.base_url, in_progress=False)[0]
    result = await callback_sender.send(params, url=f"http://127.0.0.1:{free_port()}/cb")
    assert result.http_status is None and result.retried
    assert result.error.startswith("connection failed")


async def test_dropped_connection_is_retried_once_then_answered(sim: SimServer, callback_sender) -> None:
    """A raw server that drops the first connection unanswered and answers the second."""
    connections: list[bytes] = []

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        connections.append(b"")
        if len(connections) > 1:
            head = await reader.readuntil(b"\r\n\r\n")
            length = int(next(line.split(b":")[1] for line in head.split(b"\r\n")
                              if line.lower().startswith(b"content-length")))
            connections[-1] = head + await reader.readexactly(length)
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
            await writer.drain()
        writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    async with server:
        params = callback_sequence(sim.create_recording(), api_base=sim.base_url, in_progress=False)[0]
        result = await callback_sender.send(params, url=f"http://127.0.0.1:{port}/cb")
    assert (result.http_status, result.retried, len(connections)) == (200, True, 2)
    assert params["RecordingSid"].encode() in connections[1]


async def test_slow_answer_times_out_without_retry(sim: SimServer, sim_account, receiver) -> None:
    receiver.delay = 2.0
    params = callback_sequence(sim.create_recording(), api_base=sim.base_url, in_progress=False)[0]
    async with CallbackSender(receiver.url, auth_token=sim_account.token, timeout=0.3) as sender:
        result = await sender.send(params)
    assert (result.http_status, result.retried, result.error) == (None, False, "timed out")
    assert len(receiver.calls) == 1


async def test_send_many_respects_concurrency_and_rate(sim: SimServer, sim_account, receiver) -> None:
    receiver.delay = 0.05
    recs = [SimRecording(account_sid=sim_account.sid) for _ in range(24)]
    async with CallbackSender(receiver.url, auth_token=sim_account.token, concurrency=4) as sender:
        prepared = [sender.prepare(callback_sequence(r, api_base=sim.base_url)[1]) for r in recs]
        results = await sender.send_many(prepared)
        assert receiver.max_inflight == 4
        assert [r.recording_sid for r in results] == [r.sid for r in recs]
        receiver.delay, started = 0.0, time.monotonic()
        again = await sender.send_many(prepared[:10], rate=25)
        assert time.monotonic() - started >= 9 / 25
    summary = summarize(results + again)
    assert summary["sent"] == summary["ok"] == 34 and summary["statuses"] == {"204": 34}
    assert summary["retried"] == summary["errors"] == 0 and summary["p50_ms"] > 0
