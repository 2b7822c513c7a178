"""Simulator callbacks into a real ingest server, queued in a real Redis, exactly once."""

from __future__ import annotations

import asyncio
import secrets
from collections import Counter

from aiohttp.test_utils import TestServer

from recvault.events import KNOWN_SOURCES
from recvault.ingest.app import create_app
from recvault.settings import Settings
from recvault.simulator.callbacks import CallbackSender, callback_sequence
from recvault.simulator.recordings import SimRecording
from tests.fixtures.worker import wait_for
from tests.ingest.conftest import queued_payloads

TOKEN = secrets.token_hex(16)
ACCOUNT = "AC" + secrets.token_hex(16)
API_BASE = "https://api.twilio.com"


def _recordings() -> list[tuple[SimRecording, str]]:
    """Mono and dual recordings from every source, ending completed, absent or failed."""
    plan = []
    for index, source in enumerate(sorted(KNOWN_SOURCES) + ["SomeFutureSource"]):
        conference = source in ("Conference", "StartConferenceRecordingAPI")
        recording = SimRecording(
            account_sid=ACCOUNT, channels=1 + index % 2, duration=5 + index, source=source,
            call_sid=None if conference else "CA" + secrets.token_hex(16),
            conference_sid="CF" + secrets.token_hex(16) if conference else None,
            encrypted=index == 3,
        )
        plan.append((recording, ("completed", "absent", "failed")[index % 3]))
    return plan


async def test_every_callback_kind_is_queued_exactly_once(redis_url, tmp_path) -> None:
    import redis

    queue = redis.Redis.from_url(redis_url)
    settings = Settings(twilio_auth_tokens=TOKEN, broker_url=redis_url, data_dir=tmp_path)
    async with TestServer(create_app(settings)) as server:
        url = str(server.make_url("/twilio/recording-status"))
        prepared = []
        async with CallbackSender(url, auth_token=TOKEN) as post, \
                CallbackSender(url, auth_token=TOKEN, method="GET") as get:
            for index, (recording, outcome) in enumerate(_recordings()):
                sender = get if index % 2 else post
                for params in callback_sequence(recording, outcome, api_base=API_BASE):
                    # Twilio may deliver a callback more than once: send each twice.
                    prepared += [(sender, sender.prepare(params))] * 2
            results = await asyncio.gather(*(s.send_prepared(p) for s, p in prepared))
    assert {r.http_status for r in results} == {204}, [r for r in results if r.http_status != 204]
    queued = Counter((p["params"]["RecordingSid"], p["params"]["RecordingStatus"]) for p in queued_payloads(queue))
    expected = {(p.recording_sid, p.status) for _, p in prepared}
    assert set(queued) == expected
    assert set(queued.values()) == {1}


async def test_redis_outage_while_callbacks_arrive_loses_and_doubles_nothing(private_redis, tmp_path) -> None:
    import redis

    broker = f"{private_redis.url}/0"
    settings = Settings(twilio_auth_tokens=TOKEN, broker_url=broker, data_dir=tmp_path,
                        publish_timeout_seconds=0.5, redis_connect_timeout_seconds=0.5)
    plan = [SimRecording(account_sid=ACCOUNT, duration=10) for _ in range(150)]
    async with TestServer(create_app(settings)) as server:
        url = str(server.make_url("/twilio/recording-status"))
        async with CallbackSender(url, auth_token=TOKEN, concurrency=8) as sender:
            prepared = [sender.prepare(p) for rec in plan for p in callback_sequence(rec, api_base=API_BASE)]
            first, second, third = prepared[:100], prepared[100:200], prepared[200:]
            results = await sender.send_many(first)
            await asyncio.to_thread(private_redis.stop)
            results += await sender.send_many(second + first[:20])  # with replays of earlier ones
            ready = await (await sender._session.get(server.make_url("/readyz"))).json()
            await asyncio.to_thread(private_redis.start)
            results += await sender.send_many(third)
            client = redis.Redis.from_url(broker)

            def drained() -> bool:
                return client.llen("recvault") >= len(prepared)

            await asyncio.to_thread(wait_for, drained, timeout=30, what="spool to drain")
            await asyncio.sleep(1.5)  # anything still draining would show up as a duplicate
            final = await (await sender._session.get(server.make_url("/readyz"))).json()
    assert ready["status"] == "degraded" and ready["broker"] == "down" and ready["spool_depth"] > 0
    assert final == {"status": "ok", "broker": "up", "spool": "ok", "spool_depth": 0}
    assert {r.http_status for r in results} == {204}
    queued = Counter((p["params"]["RecordingSid"], p["params"]["RecordingStatus"]) for p in queued_payloads(client))
    assert set(queued) == {(p.recording_sid, p.status) for p in prepared}
    assert max(queued.values()) == 1
    # Arrival order is kept through the spool: every in-progress precedes its completed.
    order = [(p["params"]["RecordingSid"], p["params"]["RecordingStatus"]) for p in reversed(queued_payloads(client))]
    for rec in plan:
        assert order.index((rec.sid, "in-progress")) < order.index((rec.sid, "completed"))
