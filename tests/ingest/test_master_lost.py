"""A Sentinel failover while ingest holds copies no replica acknowledged: the master that took them
dies before any replica copied them, and the copies reach the new master, each event once.

The replica is SIGKILLed first, so the master takes batches nobody copies; then the master is
SIGKILLed and the replica, started again from what it had, is promoted. Its queue must hold every
accepted event exactly once: the copies it lacked published again from the spool, oldest first,
and not one event it already had queued a second time (which is what a worker would archive).
"""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
import redis

from recvault.ingest.handoff import Handoff, Outcome
from recvault.ingest.metrics import IngestMetrics
from recvault.ingest.spool import Spool
from recvault.queue.celery_factory import create_celery
from recvault.queue.writer import QueueWriter
from recvault.settings import Settings
from tests.fixtures.sentinel import SentinelSetup
from tests.fixtures.worker import wait_for
from tests.ingest.conftest import callback_message as message

pytestmark = pytest.mark.system  # real failovers, beside the Sentinel scenarios

QUEUE = "recvault"


@asynccontextmanager
async def ingest(setup: SentinelSetup, spool: Path) -> AsyncIterator[Handoff]:
    """Ingest's hand-off on the Sentinel broker, on the shipped settings' writer; closed as at a stop."""
    settings = Settings(broker_url=setup.url, broker_transport_options=setup.transport_options, queue=QUEUE)
    app = create_celery(settings)
    writer = QueueWriter.for_app(app, QUEUE, settings.dedup_ttl_seconds, timeout=settings.publish_timeout_seconds,
                                 connect_timeout=settings.publish_timeout_seconds, replicas=settings.enqueue_replicas)
    handoff = Handoff(writer, Spool(spool), IngestMetrics())
    handoff.start(asyncio.get_running_loop())
    try:
        yield handoff
    finally:
        await asyncio.get_running_loop().run_in_executor(None, handoff.close)


async def lose_the_master(setup: SentinelSetup) -> redis.Redis:
    """SIGKILL the master; start its replica again from what it had; wait until Sentinel promotes it."""
    old = setup.master
    replica = setup.replica_of(old)
    old.kill()
    await asyncio.to_thread(replica.start)  # behind by every batch it missed, with nobody to copy them from
    client = redis.Redis(port=replica.port, socket_timeout=5)
    # Nobody writes to a replica: this is everything the next master starts with.
    assert events_on(client) == [event(n) for n in range(5)]
    await asyncio.to_thread(setup.wait_failover, old.port, timeout=60)
    return client


def events_on(client: redis.Redis) -> list[str]:
    """The events on the queue, oldest (the end workers take from) first."""
    return [json.loads(raw)["headers"]["argsrepr"] for raw in reversed(client.lrange(QUEUE, 0, -1))]


def event(n: int) -> str:
    return f"('RE{n}:completed',)"


async def held_while_the_replica_is_gone(handoff: Handoff, setup: SentinelSetup) -> None:
    """Events 0-4 replicated; then the replica is lost, and 5-9 and repeats of 0 and 1 are held."""
    assert [await handoff.submit(message(n)) for n in range(5)] == [Outcome.QUEUED] * 5
    setup.replica_of(setup.master).kill()
    outcomes = [await handoff.submit(message(n)) for n in range(5, 10)]
    outcomes += [await handoff.submit(message(n, repeat=1)) for n in (0, 1)]
    assert outcomes == [Outcome.QUEUED] * 5 + [Outcome.DUPLICATE] * 2
    assert handoff.unreplicated == 7 and not handoff.replicated


async def test_a_batch_the_lost_master_alone_took_reaches_the_new_master_once(
        sentinel_setup: SentinelSetup, tmp_path: Path) -> None:
    async with ingest(sentinel_setup, tmp_path / "spool.sqlite3") as handoff:
        await held_while_the_replica_is_gone(handoff, sentinel_setup)
        new_master = await lose_the_master(sentinel_setup)  # 5-9 were the dead master's alone
        later = [await handoff.submit(message(n)) for n in range(10, 15)]
        assert set(later) <= {Outcome.QUEUED, Outcome.SPOOLED}
        await asyncio.to_thread(wait_for, lambda: new_master.llen(QUEUE) == 15 and not handoff.spool_depth,
                                timeout=20, what="the held copies and later callbacks on the new master")
        await asyncio.sleep(1.5)  # room for a second publication, which must not come
        # Each event once, and in the order ingest accepted them: the copies before what came after.
        assert events_on(new_master) == [event(n) for n in range(15)]
        assert new_master.xlen("recvault:accepted") == 15
        # The new master has no replica either: the copies stay held, now on its history.
        assert handoff.unreplicated == 12 and not handoff.replicated  # 5-9, the repeats, 10-14
        new_master.close()


async def test_ingest_restarted_while_copies_are_held_publishes_each_once_to_the_next_master(
        sentinel_setup: SentinelSetup, tmp_path: Path) -> None:
    spool = tmp_path / "spool.sqlite3"
    async with ingest(sentinel_setup, spool) as handoff:
        await held_while_the_replica_is_gone(handoff, sentinel_setup)
    # Ingest is stopped with its copies in the spool; meanwhile the master is lost.
    new_master = await lose_the_master(sentinel_setup)
    async with ingest(sentinel_setup, spool) as handoff:
        assert handoff.unreplicated == 7
        await asyncio.to_thread(wait_for, lambda: new_master.llen(QUEUE) == 10 and not handoff.spool_depth,
                                timeout=20, what="the copies published again on the new master")
        await asyncio.sleep(1.5)
        queued = events_on(new_master)
        assert queued == [event(n) for n in range(10)]
        assert Counter(queued).most_common(1)[0][1] == 1  # the repeats of 0 and 1 met their dedup keys
        assert new_master.xlen("recvault:accepted") == 10
        assert await handoff.submit(message(10)) is Outcome.QUEUED
        assert events_on(new_master)[-1] == event(10)
    new_master.close()
