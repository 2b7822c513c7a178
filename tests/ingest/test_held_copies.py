"""No replica to acknowledge: callbacks still reach the queue, their copies are held in the spool
until one does, /readyz and /metrics say so, and a restart of ingest publishes nothing twice."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import redis
from aiohttp.test_utils import TestClient, TestServer

from recvault.ingest.app import create_app
from recvault.ingest.handoff import Handoff, Outcome
from recvault.ingest.metrics import IngestMetrics
from recvault.ingest.spool import Spool
from recvault.queue.celery_factory import create_celery
from recvault.queue.writer import QueueWriter
from recvault.settings import Settings
from tests.fixtures.worker import wait_for
from tests.ingest.conftest import TOKEN, callback_params, post_callback
from tests.ingest.conftest import callback_message as message
from tests.queue.replicas import MasterAndReplica, master_and_replica

QUEUE = "recvault"
GAUGE = "recvault_broker_unreplicated_callbacks"


@asynccontextmanager
async def handoff_on(pair: MasterAndReplica, spool: Path, *, dedup_ttl: int = 60,
                     retry_interval: float = 1.0) -> AsyncIterator[tuple[Handoff, IngestMetrics]]:
    """A running hand-off that waits for one replica, as ingest's does; closed on exit, as at a stop."""
    app = create_celery(Settings(broker_url=pair.url, queue=QUEUE))
    # WAIT waits half the socket timeout: 2 s here, far from how long a batch takes when it does not wait.
    writer = QueueWriter.for_app(app, QUEUE, dedup_ttl, timeout=4, connect_timeout=1, replicas=1)
    metrics = IngestMetrics()
    handoff = Handoff(writer, Spool(spool), metrics, retry_interval=retry_interval)
    handoff.start(asyncio.get_running_loop())
    try:
        yield handoff, metrics
    finally:
        await asyncio.get_running_loop().run_in_executor(None, handoff.close)


def queued(client: redis.Redis) -> list[str]:
    """The events on the queue, oldest (the end workers take from) first."""
    return [json.loads(raw)["headers"]["argsrepr"] for raw in reversed(client.lrange(QUEUE, 0, -1))]


async def eventually(condition, what: str, timeout: float = 15) -> None:
    await asyncio.to_thread(wait_for, condition, timeout=timeout, what=what)


async def until_ready(client: TestClient, *, accepting: bool = False) -> dict:
    """/readyz's answer once it is 'ok' (or, `accepting`, answered 200); callers bound the wait."""
    while True:
        response = await client.get("/readyz")
        body = await response.json()
        if body["status"] == "ok" or (accepting and response.status == 200 and "replication" not in body):
            return body
        await asyncio.sleep(0.1)


async def test_without_a_replica_callbacks_reach_the_queue_and_copies_are_held_until_one_is_back(tmp_path) -> None:
    with master_and_replica(tmp_path) as pair:
        async with handoff_on(pair, tmp_path / "spool.sqlite3") as (handoff, metrics):
            assert await handoff.submit(message(0)) is Outcome.QUEUED
            await asyncio.to_thread(pair.lose_replica)
            outcomes = await asyncio.wait_for(asyncio.gather(*(handoff.submit(message(n)) for n in range(1, 21))), 10)
            assert outcomes == [Outcome.QUEUED] * 20  # answered: on the master, and in the spool
            assert (handoff.unreplicated, handoff.spool_depth, handoff.replicated) == (20, 0, False)
            assert handoff.degraded and handoff.accepting
            assert metrics.registry.get_sample_value(GAUGE) == 20
            # The master said no replica is online: later callbacks do not wait for one in vain.
            started = time.monotonic()
            assert await handoff.submit(message(21)) is Outcome.QUEUED
            assert time.monotonic() - started < 1
            with pair.client() as master:
                assert queued(master) == [f"('RE{n}:completed',)" for n in range(22)]  # workers can take them

            await asyncio.to_thread(pair.bring_back_replica)
            await eventually(lambda: handoff.unreplicated == 0, "the copies to be released")
            assert handoff.replicated and not handoff.degraded
            assert metrics.registry.get_sample_value(GAUGE) == 0
            with pair.client(pair.replica) as replica:
                assert replica.llen(QUEUE) == 22
        spool = Spool(tmp_path / "spool.sqlite3")
        assert (spool.depth(), spool.held()) == (0, 0)
        spool.close()


async def test_readyz_and_metrics_report_unacknowledged_replication(tmp_path) -> None:
    with master_and_replica(tmp_path / "broker") as pair:
        settings = Settings(twilio_auth_tokens=TOKEN, broker_url=pair.url, broker_wait_replicas=1,
                            data_dir=tmp_path, publish_timeout_seconds=1, redis_connect_timeout_seconds=1)
        async with TestClient(TestServer(create_app(settings))) as client:
            assert (await post_callback(client, callback_params())).status == 204
            assert await (await client.get("/readyz")).json() == {
                "status": "ok", "broker": "up", "spool": "ok", "spool_depth": 0}
            await asyncio.to_thread(pair.lose_replica)
            statuses = [(await post_callback(client, callback_params())).status for _ in range(3)]
            assert statuses == [204] * 3
            ready = await client.get("/readyz")
            assert ready.status == 200
            assert await ready.json() == {"status": "degraded", "broker": "up", "spool": "ok", "spool_depth": 0,
                                          "replication": "unacknowledged", "unreplicated": 3}
            assert f"\n{GAUGE} 3.0\n" in await (await client.get("/metrics")).text()
            with pair.client() as master:
                assert master.llen("recvault") == 4

            await asyncio.to_thread(pair.bring_back_replica)
            assert await asyncio.wait_for(until_ready(client), 15) == {
                "status": "ok", "broker": "up", "spool": "ok", "spool_depth": 0}
            assert f"\n{GAUGE} 0.0\n" in await (await client.get("/metrics")).text()


async def test_a_full_spool_with_no_replica_refuses_with_503_and_recovers_when_one_is_back(tmp_path) -> None:
    with master_and_replica(tmp_path / "broker") as pair:
        settings = Settings(twilio_auth_tokens=TOKEN, broker_url=pair.url, broker_wait_replicas=1,
                            data_dir=tmp_path, spool_max_bytes=64 * 1024, publish_timeout_seconds=1,
                            redis_connect_timeout_seconds=1)
        async with TestClient(TestServer(create_app(settings))) as client:
            await asyncio.to_thread(pair.lose_replica)
            answers = []
            for _ in range(500):
                answers.append((await post_callback(client, callback_params())).status)
                if answers[-1] != 204:
                    break
            # Held copies count against the spool's size: past it, neither a replica nor the disk keeps
            # a callback, and it is refused rather than answered on the master's word alone.
            assert answers[-1] == 503 and set(answers[:-1]) == {204} and len(answers) > 5
            ready = await client.get("/readyz")
            body = await ready.json()
            assert ready.status == 503 and body["status"] == "unavailable" and body["broker"] == "up"
            assert body["replication"] == "unacknowledged" and body["unreplicated"] == len(answers) - 1
            assert body["reason"] == "neither a replica nor the spool can keep callbacks"

            await asyncio.to_thread(pair.bring_back_replica)
            # Once the replica acknowledges, callbacks are kept again: replicated, whatever the spool.
            body = await asyncio.wait_for(until_ready(client, accepting=True), 15)
            assert body["broker"] == "up" and "replication" not in body
            assert (await post_callback(client, callback_params())).status == 204


async def test_a_restart_with_copies_held_on_the_same_master_publishes_nothing_again(tmp_path) -> None:
    with master_and_replica(tmp_path / "broker") as pair:
        spool = tmp_path / "spool.sqlite3"
        async with handoff_on(pair, spool) as (handoff, _):
            assert await handoff.submit(message(0)) is Outcome.QUEUED
            await asyncio.to_thread(pair.lose_replica)
            assert [await handoff.submit(message(n)) for n in range(1, 6)] == [Outcome.QUEUED] * 5
            assert handoff.unreplicated == 5
        # Ingest starts again: its copies are still held, and the master still holds their messages.
        async with handoff_on(pair, spool) as (handoff, _):
            assert handoff.unreplicated == 5
            assert await handoff.submit(message(6)) is Outcome.QUEUED
            assert await handoff.submit(message(3, repeat=1)) is Outcome.DUPLICATE
            await asyncio.sleep(1.5)  # a look at the master's replication or two
            assert handoff.unreplicated == 6 and handoff.spool_depth == 0  # RE3 had its copy already
            with pair.client() as master:
                assert queued(master) == [f"('RE{n}:completed',)" for n in range(7)]  # none twice
                assert master.xlen("recvault:accepted") == 7
            await asyncio.to_thread(pair.bring_back_replica)
            await eventually(lambda: handoff.unreplicated == 0, "the copies to be released")
        with pair.client(pair.replica) as replica:
            assert queued(replica) == [f"('RE{n}:completed',)" for n in range(7)]


async def test_a_copy_held_longer_than_the_dedup_window_still_meets_its_key(tmp_path) -> None:
    with master_and_replica(tmp_path / "broker") as pair:
        async with handoff_on(pair, tmp_path / "spool.sqlite3", dedup_ttl=4, retry_interval=0.2) as (handoff, _):
            await asyncio.to_thread(pair.lose_replica)
            assert await handoff.submit(message(1)) is Outcome.QUEUED
            await asyncio.sleep(6)  # half as long again as the window
            with pair.client() as master:
                # Renewed every half window while held: published again, the copy would be refused.
                assert 0 < master.ttl("recvault:seen:RE1:completed") <= 4
            assert handoff.unreplicated == 1
