"""Each injected fault behaves as specified, then the recording serves normally."""

from __future__ import annotations

import asyncio
import hashlib
import json
import time
from collections.abc import AsyncIterator

import aiohttp
import pytest
import requests

from recvault.simulator.server import SimServer


@pytest.fixture
async def http(sim_account) -> AsyncIterator[aiohttp.ClientSession]:
    auth = {"Authorization": aiohttp.encode_basic_auth(sim_account.sid, sim_account.token)}
    async with aiohttp.ClientSession(headers=auth) as session:
        yield session


async def status_of(session: aiohttp.ClientSession, url: str) -> tuple[int, dict, bytes]:
    async with session.get(url) as response:
        return response.status, dict(response.headers), await response.read()


async def read_until_cut(session: aiohttp.ClientSession, url: str) -> tuple[int, int]:
    """(announced Content-Length, bytes received before the connection ended early)."""
    received = 0
    async with session.get(url) as response:
        announced = response.content_length
        with pytest.raises(aiohttp.ClientPayloadError):
            async for chunk in response.content.iter_any():
                received += len(chunk)
    return announced, received


async def test_not_found_window_then_available(sim: SimServer, http) -> None:
    rec = sim.create_recording(duration=2, faults={"not_found_seconds": 0.6})
    url = sim.recording_url(rec)
    for suffix in (".json", ".wav"):
        status, _, body = await status_of(http, url + suffix)
        assert status == 404 and json.loads(body)["code"] == 20404
    await asyncio.sleep(0.7)
    assert (await status_of(http, url + ".json"))[0] == 200
    assert (await status_of(http, url + ".wav"))[0] == 200


async def test_rate_limited_then_served(sim: SimServer, http) -> None:
    rec = sim.create_recording(duration=2, faults={"rate_limited": 2, "retry_after_seconds": 3})
    url = sim.recording_url(rec) + ".wav"
    for _ in range(2):
        status, headers, body = await status_of(http, url)
        assert status == 429 and headers["Retry-After"] == "3"
        assert json.loads(body)["code"] == 20429
    assert (await status_of(http, sim.recording_url(rec) + ".json"))[0] == 200  # media only
    status, _, body = await status_of(http, url)
    assert status == 200 and hashlib.sha256(body).hexdigest() == sim.expected(rec)[1]


async def test_server_errors_then_served(sim: SimServer, http) -> None:
    rec = sim.create_recording(duration=2, faults={"server_errors": 1})
    status, _, body = await status_of(http, sim.recording_url(rec) + ".wav")
    assert status == 503 and json.loads(body)["code"] == 20503
    assert (await status_of(http, sim.recording_url(rec) + ".wav"))[0] == 200


async def test_not_found_window_does_not_use_up_other_faults(sim: SimServer, http) -> None:
    rec = sim.create_recording(duration=1, faults={"not_found_seconds": 0.3, "rate_limited": 1})
    assert (await status_of(http, sim.recording_url(rec) + ".wav"))[0] == 404
    await asyncio.sleep(0.4)
    assert (await status_of(http, sim.recording_url(rec) + ".wav"))[0] == 429
    assert (await status_of(http, sim.recording_url(rec) + ".wav"))[0] == 200


async def test_cut_body_is_shorter_than_content_length(sim: SimServer, http) -> None:
    rec = sim.create_recording(duration=30, faults={"cut_after_bytes": 100_000, "cut_times": 2})
    size, digest = sim.expected(rec)
    for _ in range(2):
        assert await read_until_cut(http, sim.recording_url(rec) + ".wav") == (size, 100_000)
    status, _, body = await status_of(http, sim.recording_url(rec) + ".wav")
    assert status == 200 and hashlib.sha256(body).hexdigest() == digest


async def test_wrong_length_announces_more_than_it_sends(sim: SimServer, http) -> None:
    rec = sim.create_recording(duration=5, faults={"wrong_length_times": 1})
    size, digest = sim.expected(rec)
    announced, received = await read_until_cut(http, sim.recording_url(rec) + ".wav")
    assert received == size < announced
    status, headers, body = await status_of(http, sim.recording_url(rec) + ".wav")
    assert int(headers["Content-Length"]) == len(body) == size
    assert hashlib.sha256(body).hexdigest() == digest


async def test_slow_media_delays_the_body(sim: SimServer, http) -> None:
    rec = sim.create_recording(duration=1, faults={"slow_seconds": 0.5})
    started = time.monotonic()
    assert (await status_of(http, sim.recording_url(rec) + ".wav"))[0] == 200
    assert time.monotonic() - started >= 0.5


async def test_gone_is_not_found_forever(sim: SimServer, http) -> None:
    rec = sim.create_recording(faults={"gone": True})
    for _ in range(3):
        for suffix in (".json", ".wav", ".mp3"):
            assert (await status_of(http, sim.recording_url(rec) + suffix))[0] == 404
        await asyncio.sleep(0.05)


async def test_redirect_answers_media_with_the_location_as_given(sim: SimServer, http) -> None:
    location = "https://evil.example\\@api.twilio.com/x.wav"  # sent byte for byte, backslash included
    rec = sim.create_recording(duration=1, faults={"redirect_to": location})
    async with http.get(sim.recording_url(rec) + ".wav", allow_redirects=False) as response:
        assert response.status == 302 and response.headers["Location"] == location
    assert (await status_of(http, sim.recording_url(rec) + ".json"))[0] == 200  # media only
    assert rec.media_requests == 1


def test_sync_clients_see_the_cut_too(sim: SimServer, sim_api_key) -> None:
    """The workers download with requests from synchronous code: the fixture serves them as well."""
    rec = sim.create_recording(duration=20, faults={"cut_after_bytes": 5000, "cut_times": 1})
    auth = (sim_api_key.sid, sim_api_key.secret)
    with pytest.raises(requests.exceptions.ChunkedEncodingError):
        requests.get(sim.recording_url(rec) + ".wav", auth=auth, timeout=10).content  # noqa: B018
    response = requests.get(sim.recording_url(rec) + ".wav", auth=auth, timeout=10)
    assert hashlib.sha256(response.content).hexdigest() == sim.expected(rec)[1]
    assert rec.media_requests == 2


async def test_first_byte_latency_holds_back_resource_media_and_delete_answers(sim: SimServer, http) -> None:
    rec = sim.create_recording(duration=1, faults={"first_byte_seconds": 0.3})
    url = sim.recording_url(rec)
    for target in (f"{url}.json", f"{url}.wav"):
        started = time.monotonic()
        status, _, _ = await status_of(http, target)
        assert status == 200 and time.monotonic() - started >= 0.3
    started = time.monotonic()
    async with http.delete(f"{url}.json") as response:
        assert response.status == 204 and time.monotonic() - started >= 0.3


async def test_latency_and_bandwidth_together_pace_one_stream(sim: SimServer, http) -> None:
    # 30 s of mono WAV is 480,044 bytes, sent in 256 KiB chunks: at 1 MB/s the last chunk
    # leaves about 0.26 s after the first, which left after the latency.
    rec = sim.create_recording(duration=30, faults={"first_byte_seconds": 0.2, "bytes_per_second": 1_000_000})
    started = time.monotonic()
    status, _, body = await status_of(http, f"{sim.recording_url(rec)}.wav")
    elapsed = time.monotonic() - started
    assert status == 200 and len(body) == 480_044
    assert elapsed >= 0.2 + 0.25
