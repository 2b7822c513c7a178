"""The /_sim/ control API and the in-process SimServer runners."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator

import aiohttp
import pytest

from recvault.simulator.media import media_sha256
from recvault.simulator.recordings import SimState
from recvault.simulator.server import SimServer


@pytest.fixture
async def control() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


async def call(session: aiohttp.ClientSession, method: str, url: str, **kw) -> tuple[int, object]:
    async with session.request(method, url, **kw) as response:
        return response.status, await response.json()


async def test_create_with_faults_then_inspect(sim: SimServer, sim_account, control) -> None:
    status, view = await call(control, "POST", f"{sim.base_url}/_sim/recordings", json={
        "channels": 2, "duration": 12, "source": "DialVerb", "rate_limited": 1,
        "faults": {"not_found_seconds": 5}, "start_time": "Wed, 20 Apr 2022 23:45:25 +0000",
        "date_created": "2022-04-20T23:46:00Z",
    })
    assert status == 201
    sid = view["resource"]["sid"]
    assert sid.startswith("RE") and view["resource"]["account_sid"] == sim_account.sid
    assert view["resource"]["start_time"] == "Wed, 20 Apr 2022 23:45:25 +0000"
    assert view["resource"]["date_created"] == "Wed, 20 Apr 2022 23:46:00 +0000"
    assert view["simulator"]["faults"]["rate_limited"] == 1
    assert view["simulator"]["faults"]["not_found_seconds"] == 5
    assert view["media_sizes"]["wav"]["2"] == 44 + 12 * 8000 * 2 * 2
    rec = sim.state.get(sid)
    assert rec is not None and rec.faults.rate_limited == 1 and rec.channels == 2
    status, shown = await call(control, "GET", f"{sim.base_url}/_sim/recordings/{sid}")
    assert status == 200 and shown["simulator"]["sid"] == sid


async def test_create_many_and_list_all(sim: SimServer, control) -> None:
    body = [{"duration": 1}, {"duration": 2, "conference_sid": "CF" + "1" * 32}]
    status, views = await call(control, "POST", f"{sim.base_url}/_sim/recordings", json=body)
    assert status == 201 and len(views) == 2
    assert views[1]["resource"]["call_sid"] is None  # conference recordings may have no CallSid
    status, listed = await call(control, "GET", f"{sim.base_url}/_sim/recordings")
    assert status == 200 and {v["simulator"]["sid"] for v in listed} == {v["simulator"]["sid"] for v in views}


@pytest.mark.parametrize("body", [{"colour": "blue"}, {"channels": 3}, {"faults": {"nope": 1}},
                                  {"account_sid": "AC" + "9" * 32}, [1]])
async def test_bad_create_is_400(sim: SimServer, control, body) -> None:
    status, answer = await call(control, "POST", f"{sim.base_url}/_sim/recordings", json=body)
    assert status == 400 and answer["error"]


async def test_expected_is_opt_in_and_matches(sim: SimServer, control) -> None:
    rec = sim.create_recording(channels=2, duration=40)
    url = f"{sim.base_url}/_sim/recordings/{rec.sid}/expected"
    status, default = await call(control, "GET", url)
    assert status == 200 and default["channels"] == 2 and default["format"] == "wav"
    assert default["sha256"] == media_sha256(rec.sid, "wav", 2, 40)
    status, mono_mp3 = await call(control, "GET", url + "?format=mp3&channels=1")
    assert (mono_mp3["size"], mono_mp3["sha256"]) == sim.expected(rec, "mp3", 1)
    assert (await call(control, "GET", url + "?format=ogg"))[0] == 400


async def test_patch_changes_status_and_faults(sim: SimServer, sim_account, control) -> None:
    rec = sim.create_recording(status="in-progress")
    status, view = await call(control, "PATCH", f"{sim.base_url}/_sim/recordings/{rec.sid}",
                              json={"status": "completed", "server_errors": 2})
    assert status == 200 and view["resource"]["status"] == "completed"
    assert rec.status == "completed" and rec.faults.server_errors == 2


async def test_request_log_and_reset(sim: SimServer, sim_account, control) -> None:
    rec = sim.create_recording()
    async with control.get(sim.recording_url(rec) + ".json") as response:
        assert response.status == 401
    status, log = await call(control, "GET", f"{sim.base_url}/_sim/requests")
    assert status == 200 and len(log) == 1
    assert log[0]["method"] == "GET" and log[0]["auth"] == "none" and log[0]["status"] == 401
    assert log[0]["path"].endswith(f"{rec.sid}.json")
    assert (await call(control, "POST", f"{sim.base_url}/_sim/reset"))[0] == 200
    assert sim.state.recordings == {} and list(sim.state.requests) == []
    assert sim.state.accounts == [sim_account.sid]  # accounts survive a reset


async def test_accounts_and_api_keys_by_control_api(sim: SimServer, control) -> None:
    status, account = await call(control, "POST", f"{sim.base_url}/_sim/accounts", json={})
    assert status == 201 and account["sid"].startswith("AC") and account["token"]
    status, key = await call(control, "POST", f"{sim.base_url}/_sim/api-keys",
                             json={"account_sid": account["sid"], "secret": "chosen-secret-value"})
    assert status == 201 and "secret" not in key  # a secret the caller chose is never echoed
    assert sim.state.authenticate(key["sid"], "chosen-secret-value") == account["sid"]
    status, _ = await call(control, "POST", f"{sim.base_url}/_sim/api-keys", json={"account_sid": "AC0"})
    assert status == 400


async def test_async_runner_listens_then_releases_its_port() -> None:
    state = SimState()
    state.add_account()
    async with SimServer(state) as server:
        async with aiohttp.ClientSession() as session:
            async with session.get(f"{server.base_url}/_sim/recordings") as response:
                assert response.status == 200
        port = server.port
    with socket.socket() as probe:
        assert probe.connect_ex(("127.0.0.1", port)) != 0


def test_thread_runner_returns_base_url_and_stops() -> None:
    server = SimServer()
    base_url = server.start_in_thread()
    try:
        with socket.create_connection(("127.0.0.1", server.port), timeout=2):
            pass
        assert base_url == server.base_url
    finally:
        server.stop()
    with socket.socket() as probe:
        assert probe.connect_ex(("127.0.0.1", server.port)) != 0
