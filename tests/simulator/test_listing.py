"""Recordings.json: Twilio's page shape, newest first, paging by next_page_uri, DateCreated filters."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import aiohttp
import pytest

from recvault.simulator.server import SimServer

PAGE_FIELDS = {"recordings", "page", "page_size", "first_page_uri", "next_page_uri", "uri",
               "previous_page_uri", "start", "end"}
DAY0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


@pytest.fixture
async def http(sim_account) -> AsyncIterator[aiohttp.ClientSession]:
    auth = {"Authorization": aiohttp.encode_basic_auth(sim_account.sid, sim_account.token)}
    async with aiohttp.ClientSession(headers=auth) as session:
        yield session


@pytest.fixture
def seven_days(sim: SimServer) -> list[str]:
    """One recording per day from DAY0 to DAY0 + 6 days, plus one of another account."""
    other, _ = sim.state.add_account()
    sim.create_recording(account_sid=other, date_created=DAY0)
    return [sim.create_recording(date_created=DAY0 + timedelta(days=i)).sid for i in range(7)]


def list_url(sim: SimServer, account: str, query: str = "") -> str:
    return f"{sim.base_url}/2010-04-01/Accounts/{account}/Recordings.json{query}"


async def get_json(http: aiohttp.ClientSession, url: str) -> tuple[int, dict]:
    async with http.get(url) as response:
        return response.status, await response.json()


async def test_pages_follow_next_page_uri_newest_first(sim: SimServer, http, sim_account, seven_days) -> None:
    status, page = await get_json(http, list_url(sim, sim_account.sid, "?PageSize=3"))
    assert status == 200 and set(page) == PAGE_FIELDS
    assert (page["page"], page["page_size"], page["start"], page["end"]) == (0, 3, 0, 2)
    assert page["previous_page_uri"] is None
    assert page["first_page_uri"].startswith(f"/2010-04-01/Accounts/{sim_account.sid}/Recordings.json?")
    seen, pages = [], 0
    while True:
        seen += [r["sid"] for r in page["recordings"]]
        pages += 1
        if page["next_page_uri"] is None:
            break
        status, page = await get_json(http, sim.base_url + page["next_page_uri"])
        assert status == 200
    assert pages == 3 and (page["page"], page["start"], page["end"]) == (2, 6, 6)
    assert page["previous_page_uri"] is not None
    assert seen == list(reversed(seven_days))  # newest first, each once, own account only


async def test_date_created_filters(sim: SimServer, http, sim_account, seven_days) -> None:
    async def sids(query: str) -> list[str]:
        status, page = await get_json(http, list_url(sim, sim_account.sid, query))
        assert status == 200
        return [r["sid"] for r in page["recordings"]]

    # Twilio's own spelling puts the operator in the key: DateCreated>=2026-03-03 is key "DateCreated>".
    assert await sids("?DateCreated>=2026-03-05") == list(reversed(seven_days[4:]))
    assert await sids("?DateCreated<=2026-03-02") == list(reversed(seven_days[:2]))
    assert await sids("?DateCreated>=2026-03-02&DateCreated<=2026-03-03") == [seven_days[2], seven_days[1]]
    assert await sids("?DateCreated=2026-03-04") == [seven_days[3]]
    assert await sids("?DateCreated%3E=2026-03-07T00:00:00Z") == [seven_days[6]]


async def test_filters_survive_into_next_page_uri(sim: SimServer, http, sim_account, seven_days) -> None:
    _, page = await get_json(http, list_url(sim, sim_account.sid, "?DateCreated>=2026-03-03&PageSize=2"))
    assert "DateCreated%3E=2026-03-03" in page["next_page_uri"]
    _, second = await get_json(http, sim.base_url + page["next_page_uri"])
    _, third = await get_json(http, sim.base_url + second["next_page_uri"])
    assert third["next_page_uri"] is None
    listed = [r["sid"] for p in (page, second, third) for r in p["recordings"]]
    assert listed == list(reversed(seven_days[2:]))


@pytest.mark.parametrize("query", ["?DateCreated>=yesterday", "?PageSize=0", "?PageSize=1001", "?Page=-1"])
async def test_bad_list_parameters_are_400(sim: SimServer, http, sim_account, query) -> None:
    status, body = await get_json(http, list_url(sim, sim_account.sid, query))
    assert status == 400 and body["code"] == 20001


async def test_listing_needs_the_accounts_credentials(sim: SimServer, sim_account, seven_days) -> None:
    async with aiohttp.ClientSession() as anonymous:
        async with anonymous.get(list_url(sim, sim_account.sid)) as response:
            assert response.status == 401
