"""The simulated Recording API over real HTTP: resource, auth, media, channels, encryption, delete."""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections.abc import AsyncIterator
from email.utils import parsedate_to_datetime

import aiohttp
import pytest

from recvault.simulator.media import parse_wav_header
from recvault.simulator.server import SimServer

RESOURCE_FIELDS = {
    "account_sid", "api_version", "call_sid", "channels", "conference_sid", "date_created",
    "date_updated", "duration", "encryption_details", "error_code", "price", "price_unit", "sid",
    "uri", "source", "start_time", "status", "track", "media_url", "subresource_uris",
}


@pytest.fixture
async def http(sim_account) -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(headers=basic(sim_account.sid, sim_account.token)) as session:
        yield session


def basic(username: str, password: str) -> dict[str, str]:
    return {"Authorization": aiohttp.encode_basic_auth(username, password)}


async def fetch(session: aiohttp.ClientSession, url: str, **kw) -> tuple[int, dict, bytes]:
    async with session.get(url, **kw) as response:
        return response.status, dict(response.headers), await response.read()


async def test_resource_has_twilio_fields_and_formats(sim: SimServer, http) -> None:
    rec = sim.create_recording(channels=2, duration=61, source="DialVerb")
    status, _, body = await fetch(http, sim.recording_url(rec) + ".json")
    assert status == 200
    resource = json.loads(body)
    assert set(resource) == RESOURCE_FIELDS
    assert resource["sid"] == rec.sid and resource["account_sid"] == rec.account_sid
    assert resource["duration"] == "61" and resource["channels"] == 2
    assert resource["price"] == "-0.0050" and resource["price_unit"] == "USD"  # 2 started minutes
    assert resource["uri"] == f"/2010-04-01/Accounts/{rec.account_sid}/Recordings/{rec.sid}.json"
    assert resource["media_url"] == sim.recording_url(rec)
    assert parsedate_to_datetime(resource["date_created"]) == rec.date_created
    assert resource["start_time"].endswith(" +0000")
    assert resource["error_code"] is None and resource["encryption_details"] is None


async def test_price_is_null_until_the_price_delay_passes(sim: SimServer, http) -> None:
    rec = sim.create_recording(duration=30, price_delay=0.4)
    url = sim.recording_url(rec) + ".json"
    assert (await (await http.get(url)).json())["price"] is None
    await asyncio.sleep(0.5)
    assert (await (await http.get(url)).json())["price"] == "-0.0025"


async def test_in_progress_recording_has_duration_minus_one_and_no_media(sim: SimServer, http) -> None:
    rec = sim.create_recording(status="in-progress")
    assert (await (await http.get(sim.recording_url(rec) + ".json")).json())["duration"] == "-1"
    status, _, body = await fetch(http, sim.recording_url(rec) + ".wav")
    assert status == 404 and b"20404" in body


async def test_auth_is_enforced(sim: SimServer, sim_account, sim_api_key) -> None:
    rec = sim.create_recording()
    url = sim.recording_url(rec) + ".wav"
    other_sid, other_token = sim.state.add_account()
    other_key, other_secret = sim.state.add_api_key(other_sid)
    cases = [
        (None, 401),
        (basic(sim_account.sid, "wrong-token"), 401),
        (basic("SK" + "0" * 32, "whatever"), 401),
        (basic(sim_account.sid, sim_account.token), 200),
        (basic(sim_api_key.sid, sim_api_key.secret), 200),
        (basic(other_key, other_secret), 403),
        (basic(other_sid, other_token), 403),
    ]
    async with aiohttp.ClientSession() as session:
        for auth, expected in cases:
            status, headers, body = await fetch(session, url, headers=auth)
            assert status == expected, auth
            if expected == 401:
                assert b'"code": 20003' in body and "Basic" in headers["WWW-Authenticate"]
    log = list(sim.state.requests)
    assert [entry.auth for entry in log] == ["none", "invalid", "invalid", "valid", "valid", "valid", "valid"]
    assert log[4].principal == sim_api_key.sid
    text = repr(log) + repr(sim.state)
    assert sim_account.token not in text and sim_api_key.secret not in text


async def test_parent_account_reaches_subaccount_recordings(sim: SimServer, sim_account) -> None:
    sub, _ = sim.state.add_account(parent=sim_account.sid)
    rec = sim.create_recording(account_sid=sub)
    async with aiohttp.ClientSession(headers=basic(sim_account.sid, sim_account.token)) as s:
        assert (await fetch(s, sim.recording_url(rec) + ".json"))[0] == 200


async def test_recording_of_another_account_is_not_found(sim: SimServer, http, sim_account) -> None:
    other, _ = sim.state.add_account()
    rec = sim.create_recording(account_sid=other)
    url = f"{sim.base_url}/2010-04-01/Accounts/{sim_account.sid}/Recordings/{rec.sid}.json"
    assert (await fetch(http, url))[0] == 404


@pytest.mark.parametrize(("fmt", "path_suffix", "content_type"),
                         [("wav", ".wav", "audio/x-wav"), ("wav", "", "audio/x-wav"),
                          ("mp3", ".mp3", "audio/mpeg")])
async def test_served_media_matches_the_sha256_helper(sim: SimServer, http, fmt, path_suffix,
                                                      content_type) -> None:
    rec = sim.create_recording(channels=1, duration=9)
    status, headers, body = await fetch(http, sim.recording_url(rec) + path_suffix)
    assert status == 200 and headers["Content-Type"] == content_type
    size, digest = sim.expected(rec, fmt)
    assert int(headers["Content-Length"]) == len(body) == size
    assert hashlib.sha256(body).hexdigest() == digest


@pytest.mark.parametrize(("channels", "dual_unavailable", "query", "expected"), [
    (2, False, "", 2),  # Twilio serves what was recorded when RequestedChannels is absent
    (2, False, "?RequestedChannels=2", 2),
    (2, False, "?RequestedChannels=1", 1),
    (1, False, "", 1),
    (1, False, "?RequestedChannels=1", 1),
    (1, False, "?RequestedChannels=2", 400),
    (2, True, "?RequestedChannels=2", 400),
    (2, True, "", 1),
    (2, False, "?RequestedChannels=3", 400),
])
async def test_requested_channels(sim: SimServer, http, channels, dual_unavailable, query, expected) -> None:
    rec = sim.create_recording(channels=channels, duration=2, faults={"dual_unavailable": dual_unavailable})
    status, _, body = await fetch(http, sim.recording_url(rec) + ".wav" + query)
    if expected == 400:
        # 16113 ("no dual-channel version of a mono recording") only for a dual request.
        assert status == 400 and (b"16113" if query == "?RequestedChannels=2" else b"20001") in body
        return
    assert status == 200
    assert parse_wav_header(body[:44]).channels == expected
    assert hashlib.sha256(body).hexdigest() == sim.expected(rec, "wav", expected)[1]


async def test_encrypted_recording_is_wav_only(sim: SimServer, http) -> None:
    rec = sim.create_recording(encrypted=True, duration=3)
    resource = await (await http.get(sim.recording_url(rec) + ".json")).json()
    assert {"public_key_sid", "encrypted_cek", "iv"} <= set(resource["encryption_details"])
    assert resource["encryption_details"]["public_key_sid"].startswith("CR")
    status, _, body = await fetch(http, sim.recording_url(rec) + ".mp3")
    assert status == 400 and b'"code": 16109' in body
    assert (await fetch(http, sim.recording_url(rec) + ".wav"))[0] == 200


async def test_delete_is_for_completed_recordings_and_is_final(sim: SimServer, http) -> None:
    busy = sim.create_recording(status="in-progress")
    async with http.delete(sim.recording_url(busy) + ".json") as response:
        assert response.status == 400
    rec = sim.create_recording()
    async with http.delete(sim.recording_url(rec) + ".json") as response:
        assert response.status == 204
    for suffix in (".json", ".wav"):
        status, _, body = await fetch(http, sim.recording_url(rec) + suffix)
        assert status == 404 and b'"code": 20404' in body
    async with http.delete(sim.recording_url(rec) + ".json") as response:
        assert response.status == 404
    listed = await (await http.get(f"{sim.base_url}/2010-04-01/Accounts/{rec.account_sid}/Recordings.json")).json()
    assert rec.sid not in {r["sid"] for r in listed["recordings"]}
