"""A spool that cannot take writes (a full disk): 503 only while Redis cannot either, and recovery."""

from __future__ import annotations

import asyncio

import redis
from aiohttp.test_utils import TestClient, TestServer

from recvault.ingest.app import create_app
from recvault.settings import Settings
from tests.fixtures.worker import wait_for
from tests.ingest.conftest import TOKEN, callback_params, post_callback, queued_payloads

# The smallest spool the setting allows: a few dozen callbacks, then SQLITE_FULL as on a full disk.
SPOOL_BYTES = 64 * 1024


def settings_for(broker: str, tmp_path) -> Settings:
    return Settings(twilio_auth_tokens=TOKEN, broker_url=broker, data_dir=tmp_path, spool_max_bytes=SPOOL_BYTES,
                    publish_timeout_seconds=0.5, redis_connect_timeout_seconds=0.5)


async def fill_spool(client: TestClient) -> tuple[list[dict], list[int]]:
    """Send callbacks one by one until the spool refuses them; the params sent and the answers."""
    sent, answers = [], []
    for _ in range(500):
        params = callback_params()
        response = await post_callback(client, params)
        sent.append(params)
        answers.append(response.status)
        if response.status != 204:
            break
    return sent, answers


async def test_a_full_spool_with_redis_down_answers_503_and_recovers_by_itself(private_redis, tmp_path) -> None:
    broker = f"{private_redis.url}/0"
    await asyncio.to_thread(private_redis.stop)
    async with TestClient(TestServer(create_app(settings_for(broker, tmp_path)))) as client:
        sent, answers = await fill_spool(client)
        assert answers[-1] == 503 and set(answers[:-1]) == {204} and len(answers) > 5
        # The next one is answered at once too, with the reason, never left hanging.
        refused = await asyncio.wait_for(post_callback(client, callback_params()), timeout=5)
        assert refused.status == 503 and "durably" in (await refused.json())["error"]
        ready = await client.get("/readyz")
        body = await ready.json()
        assert ready.status == 503 and body["status"] == "unavailable"
        assert body["broker"] == "down" and "full" in body["spool"]
        assert "neither Redis nor the spool" in body["reason"]
        assert (await client.get("/healthz")).status == 200  # the hand-off thread lives on

        await asyncio.to_thread(private_redis.start)
        queue = redis.Redis.from_url(broker)
        accepted = [p for p, status in zip(sent, answers, strict=True) if status == 204]
        await asyncio.to_thread(wait_for, lambda: queue.llen("recvault") >= len(accepted), timeout=30,
                                what="the spool to drain")
        again = callback_params()
        assert (await post_callback(client, again)).status == 204
        assert (await client.get("/readyz")).status == 200
    queued = {p["params"]["RecordingSid"] for p in queued_payloads(queue)}
    assert queued == {p["RecordingSid"] for p in [*accepted, again]}
    # Spooled or not, each accepted callback has its row in the accepted-callback ledger.
    rows = [fields[b"r"].decode().split("|")[0] for _, fields in queue.xrange("recvault:accepted")]
    assert sorted(rows) == sorted(p["RecordingSid"] for p in [*accepted, again])


async def test_a_spool_that_fails_while_redis_answers_costs_no_callback(private_redis, tmp_path) -> None:
    broker = f"{private_redis.url}/0"
    await asyncio.to_thread(private_redis.stop)
    async with TestClient(TestServer(create_app(settings_for(broker, tmp_path)))) as client:
        sent, answers = await fill_spool(client)  # the spool is full and holds a backlog
        await asyncio.to_thread(private_redis.start)
        # Redis is back while the spool still cannot take a write: callbacks go to Redis.
        later = [callback_params() for _ in range(20)]
        statuses = [(await post_callback(client, params)).status for params in later]
        assert statuses == [204] * 20
        queue = redis.Redis.from_url(broker)
        accepted = [p for p, status in zip(sent, answers, strict=True) if status == 204] + later
        await asyncio.to_thread(wait_for, lambda: queue.llen("recvault") >= len(accepted), timeout=30,
                                what="backlog and new callbacks on the queue")
        body = await (await client.get("/readyz")).json()
        assert body["spool_depth"] == 0 and body["broker"] == "up"
    assert sorted(p["params"]["RecordingSid"] for p in queued_payloads(queue)) == sorted(
        p["RecordingSid"] for p in accepted)
