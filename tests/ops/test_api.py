"""The operations API on a real ingest app, over recordings really archived in SeaweedFS."""

from __future__ import annotations

import hashlib
import json
import uuid
from datetime import UTC, datetime, timedelta

import aiohttp
import pytest
from aiohttp.test_utils import TestClient, TestServer

from recvault.audit.append import read_chain
from recvault.ingest.app import create_app
from recvault.ingest.ops.openapi import ENTRY_FIELDS, openapi_document
from recvault.ops.entries import Entry
from recvault.ops.query import PARAMETERS
from tests.ops.conftest import API_TOKEN, bearer, ops_settings

OPERATIONS_ROUTES = ["/status", "/status/login", "/api/recordings", "/api/recordings/RE" + "0" * 32,
                     "/api/recordings/RE" + "0" * 32 + "/media", "/api/openapi.json"]


async def _all_pages(client: TestClient, query: str) -> tuple[list[dict], int]:
    items, pages, cursor = [], 0, None
    while True:
        url = f"/api/recordings?{query}" + (f"&cursor={cursor}" if cursor else "")
        response = await client.get(url, headers=bearer())
        assert response.status == 200, await response.text()
        body = await response.json()
        items += body["items"]
        pages += 1
        cursor = body["next_cursor"]
        if cursor is None:
            return items, pages


async def test_without_a_token_the_routes_are_not_there(redis_url, tmp_path, s3_store) -> None:
    app = create_app(ops_settings(redis_url, tmp_path, s3_store, api_token=""))
    async with TestClient(TestServer(app)) as client:
        nowhere = await client.get("/no-such-route")
        for path in OPERATIONS_ROUTES:
            response = await client.get(path, headers=bearer())
            assert response.status == 404, path
            assert await response.json() == await nowhere.json()


WRONG_AUTHORIZATIONS = [None, "Bearer", f"Basic {API_TOKEN}", "Bearer wrong-token-0123456789",
                        f"Bearer {API_TOKEN}x", f"Bearer {API_TOKEN[:-1]}", "Bearer \u00e9\u00e9"]


async def test_a_missing_or_wrong_token_is_401_with_a_reason(redis_url, tmp_path, s3_store, archived) -> None:
    # Each request from an address of its own (the proxy's word), so that none backs off: test_sign_in.py
    # tests the backing off.
    settings = ops_settings(redis_url, tmp_path, s3_store, trust_forwarded_headers=True)
    addresses = (f"198.51.100.{n}" for n in range(1, 255))
    async with TestClient(TestServer(create_app(settings))) as client:
        for authorization in WRONG_AUTHORIZATIONS:
            headers = {"Authorization": authorization} if authorization is not None else {}
            for path in OPERATIONS_ROUTES[:1] + OPERATIONS_ROUTES[2:]:
                response = await client.get(path, headers={**headers, "X-Forwarded-For": next(addresses)})
                assert response.status == 401, (authorization, path)
                assert (await response.json())["error"]
                assert response.headers["WWW-Authenticate"].startswith("Bearer")
        assert (await client.get("/api/openapi.json", headers=bearer())).status == 200


async def test_recordings_are_listed_newest_day_first_and_paged_by_cursor(ops_client, archived) -> None:
    everything, pages = await _all_pages(ops_client, "limit=2&status=completed,absent")
    completed = [i for i in everything if i["status"] == "completed"]
    assert {i["sid"] for i in completed} == set(archived.documents)
    assert [i["sid"] for i in everything if i["status"] == "absent"] == archived.absent
    assert len(everything) == len({(i["sid"], i["status"]) for i in everything})  # nothing twice
    assert pages >= 4
    days = [i["date"] for i in everything]
    assert days == sorted(days, reverse=True)
    for item in completed:
        document = archived.documents[item["sid"]]
        assert item["duration"] == int(document["duration"]) and item["source"] == document["source"]
        assert item["price"] == f"{float(document['price']):.4f}"
        assert item["links"]["self"] == f"/api/recordings/{item['sid']}?date={item['date']}"
        latency = datetime.fromisoformat(document["archived_at"]) - datetime.fromisoformat(document["received_at"])
        assert item["latency_seconds"] == pytest.approx(latency.total_seconds())


async def test_filters_select_exactly_the_matching_recordings(ops_client, archived) -> None:
    today = datetime.now(UTC).date()
    two_days_ago = (today - timedelta(days=2)).isoformat()
    some = next(iter(archived.documents.values()))

    async def sids(query: str) -> set[str]:
        return {item["sid"] for item in (await _all_pages(ops_client, query))[0]}

    dial = {sid for sid, d in archived.documents.items() if d["source"] == "DialVerb"}
    assert len(dial) == 2
    assert await sids("source=DialVerb") == dial
    assert await sids("rule=dial-30d") == dial
    assert await sids("tag=team=support") == dial and await sids("tag=team") == dial
    assert await sids("tag=team=sales") == set()
    assert await sids("label=team") == set()  # a tag the policy set is not a label the callback carried
    assert await sids(f"call={some['call_sid']}") == {some["sid"]}
    assert await sids(f"account={some['account_sid']}&status=completed") == set(archived.documents)
    assert await sids("account=AC" + "9" * 32) == set()
    assert await sids(f"from={two_days_ago}&to={two_days_ago}") == {d["sid"] for d in archived.on(two_days_ago)}
    assert len(archived.on(two_days_ago)) == 2
    assert await sids(f"to={(today - timedelta(days=3)).isoformat()}") == \
        {d["sid"] for d in archived.on((today - timedelta(days=10)).isoformat())}
    assert await sids("status=absent") == set(archived.absent)


BAD_INPUT = [
    ("/api/recordings?from=2026-13-01", "from"),
    ("/api/recordings?to=yesterday", "to"),
    ("/api/recordings?from=2026-02-02&to=2026-02-01", "after"),
    ("/api/recordings?cursor=not-a-cursor", "cursor"),
    ("/api/recordings?cursor=eyJ2IjoxfQ", "cursor"),
    ("/api/recordings?limit=0", "limit"),
    ("/api/recordings?limit=abc", "limit"),
    ("/api/recordings?account=AC123", "account"),
    ("/api/recordings?call=RE" + "1" * 32, "call"),
    ("/api/recordings?status=COMPLETED", "status"),
    ("/api/recordings?label==x", "label"),
    ("/api/recordings?tag==x", "tag"),
    ("/api/recordings?colour=blue", "unknown parameter"),
    ("/api/recordings?limit=1&limit=2", "more than once"),
    ("/api/recordings/RE123", "RecordingSid"),
    ("/api/recordings/CA" + "1" * 32, "RecordingSid"),
    ("/api/recordings/RE" + "1" * 32 + "?date=2026-02-30", "date"),
    ("/api/recordings/RE" + "1" * 32 + "?day=2026-02-03", "unknown parameter"),
    ("/api/recordings/RE" + "1" * 32 + "/media?date=x", "date"),
]


async def test_bad_input_is_400_with_a_reason(ops_client) -> None:
    for path, reason in BAD_INPUT:
        response = await ops_client.get(path, headers=bearer())
        assert response.status == 400, (path, await response.text())
        assert reason in (await response.json())["error"], path
    response = await ops_client.get("/api/recordings/RE" + "1" * 32 + "/media",
                                    headers=bearer(**{"X-Recvault-User": "x" * 129}))
    assert response.status == 400 and "X-Recvault-User" in (await response.json())["error"]


async def test_a_cursor_only_continues_the_query_that_made_it(ops_client, archived) -> None:
    first = await (await ops_client.get("/api/recordings?limit=1&source=DialVerb", headers=bearer())).json()
    assert first["next_cursor"]
    response = await ops_client.get(f"/api/recordings?limit=1&cursor={first['next_cursor']}", headers=bearer())
    assert response.status == 400 and "other filters" in (await response.json())["error"]


async def test_a_recording_comes_with_its_events_audit_trail_and_dead_letters(ops_client, archived) -> None:
    sid, document = list(archived.documents.items())[1]  # the media test reads the first one
    body = await (await ops_client.get(f"/api/recordings/{sid}", headers=bearer())).json()
    assert body["recording"] == document
    assert [record["action"] for record in body["audit"]] == ["archived"]
    assert body["audit"][0]["sha256"] == document["media_sha256"]
    assert body["dead_letters"] == []
    absent = await (await ops_client.get(f"/api/recordings/{archived.absent[0]}", headers=bearer())).json()
    assert absent["recording"] is None and [e["status"] for e in absent["events"]] == ["absent"]
    assert [record["action"] for record in absent["audit"]] == ["event-absent"]
    missing = await ops_client.get(f"/api/recordings/{archived.dead_lettered}", headers=bearer())
    assert missing.status == 404 and archived.dead_lettered in (await missing.json())["error"]


async def test_media_is_a_redirect_to_a_presigned_url_and_is_recorded_in_the_audit_trail(
        ops_client, archived, s3_store) -> None:
    sid, document = next(iter(archived.documents.items()))
    response = await ops_client.get(f"/api/recordings/{sid}/media", allow_redirects=False,
                                    headers=bearer(**{"X-Recvault-User": "Dana Auditor"}))
    assert response.status == 302
    location = response.headers["Location"]
    assert location.startswith(str(s3_store.endpoint_url)) and "X-Amz-Expires=300" in location
    async with aiohttp.ClientSession() as plain, plain.get(location) as media:
        assert media.status == 200
        assert hashlib.sha256(await media.read()).hexdigest() == document["media_sha256"]
    body = await (await ops_client.get(f"/api/recordings/{sid}", headers=bearer())).json()
    access = [record for record in body["audit"] if record["action"] == "media-accessed"]
    assert len(access) == 1
    assert access[0]["user"] == "Dana Auditor" and access[0]["credential"].startswith("api-token:")
    assert access[0]["media_key"] == document["media_key"] and access[0]["url_seconds"] == 300
    assert API_TOKEN not in json.dumps(body)
    [key] = [e.key for e in read_chain(s3_store, "", sid)[0] if e.action == "media-accessed"]
    assert s3_store.head(key).retention.mode == "GOVERNANCE"  # locked like the recording


async def test_playback_can_be_turned_off(redis_url, tmp_path, s3_store, archived) -> None:
    sid = list(archived.documents)[2]
    settings = ops_settings(redis_url, tmp_path, s3_store, media_playback=False)
    async with TestClient(TestServer(create_app(settings))) as client:
        response = await client.get(f"/api/recordings/{sid}/media", headers=bearer(), allow_redirects=False)
        assert response.status == 403 and "RECVAULT_MEDIA_PLAYBACK" in (await response.json())["error"]
    assert not [e for e in read_chain(s3_store, "", sid)[0] if e.action == "media-accessed"]


async def test_the_openapi_document_describes_every_route_and_parameter(ops_client) -> None:
    response = await ops_client.get("/api/openapi.json", headers=bearer())
    document = await response.json()
    assert document == json.loads(json.dumps(openapi_document()))
    assert document["openapi"].startswith("3.")
    routes = {resource.canonical.replace("{sid}", "{RecordingSid}") for resource in ops_client.app.router.resources()
              if resource.canonical.startswith(("/api/", "/status"))
              and resource.canonical not in ("/status/login", "/status/logout")}
    assert set(document["paths"]) == routes
    listed = [p["name"] for p in document["paths"]["/api/recordings"]["get"]["parameters"]]
    assert listed == list(PARAMETERS)
    entry = Entry(sid="RE" + "0" * 32, date="2026-01-01", key="k", status="completed")
    assert set(ENTRY_FIELDS) == {*entry.to_json(), "links"}


async def test_people_sign_in_with_a_form_and_get_a_strict_cookie(ops_client, archived) -> None:
    wrong = await ops_client.post("/status/login", data={"token": "not-the-token-at-all", "user": "Sam"},
                                  allow_redirects=False)
    assert wrong.status == 401
    form = await ops_client.get("/status/login")
    assert form.status == 200 and 'name="token"' in await form.text()
    signed_in = await ops_client.post("/status/login", data={"token": API_TOKEN, "user": "Sam Ops"},
                                      allow_redirects=False)
    assert signed_in.status == 303 and signed_in.headers["Location"] == "/status"
    cookie = signed_in.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and API_TOKEN not in cookie
    assert "Secure" not in cookie  # plain HTTP, no proxy trusted to say otherwise (test_sign_in.py: TLS)
    page = await ops_client.get("/status")
    assert page.status == 200 and "signed in as Sam Ops" in await page.text()
    assert page.headers["Content-Security-Policy"].startswith("default-src 'none'")
    value = signed_in.cookies["recvault_ops"].value
    ops_client.session.cookie_jar.clear()
    forged = value[:-1] + ("0" if value[-1] != "0" else "1")
    response = await ops_client.get("/status", headers={"Cookie": f"recvault_ops={forged}"})
    assert response.status == 401 and "/status/login" in (await response.json())["error"]


async def test_an_archive_that_cannot_be_read_is_503_with_the_reason_never_500(redis_url, tmp_path,
                                                                                s3_store) -> None:
    settings = ops_settings(redis_url, tmp_path, s3_store, s3_bucket=f"missing-{uuid.uuid4().hex[:12]}")
    async with TestClient(TestServer(create_app(settings))) as client:
        for path in ("/api/recordings", "/api/recordings/RE" + "1" * 32, "/api/recordings/RE" + "1" * 32 + "/media"):
            response = await client.get(path, headers=bearer(), allow_redirects=False)
            assert response.status == 503, path
            assert "NoSuchBucket" in (await response.json())["error"]
        page = await client.get("/status", headers=bearer())
        assert page.status == 200 and "archive unreadable" in await page.text()


def test_tags_and_callback_labels_are_told_apart_in_listings_and_filters() -> None:
    from recvault.ops.entries import Entry
    from recvault.ops.query import RecordingQuery

    document = {"sid": "RE" + "1" * 32, "status": "completed", "tags": {"team": "support"},
                "labels": {"tenant": "acme-securities"}}
    entry = Entry.from_document("metadata/date=2026-11-24/x.json", "2026-11-24", document, event=False)
    shown = entry.to_json()
    assert (shown["tags"], shown["labels"]) == ({"team": "support"}, {"tenant": "acme-securities"})
    assert RecordingQuery.parse({"tag": "team=support"}).matches(entry)
    assert RecordingQuery.parse({"label": "tenant=acme-securities"}).matches(entry)
    assert not RecordingQuery.parse({"label": "team=support"}).matches(entry)
    assert not RecordingQuery.parse({"tag": "tenant"}).matches(entry)
