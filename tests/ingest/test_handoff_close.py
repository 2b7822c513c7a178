"""Closing the hand-off delivers every event submitted before it, however many batches that takes."""

from __future__ import annotations

import asyncio

import redis

from recvault.ingest.handoff import Handoff, Outcome
from recvault.ingest.metrics import IngestMetrics
from recvault.ingest.spool import Spool
from recvault.queue.celery_factory import create_celery
from recvault.queue.writer import QueueWriter, build_message
from recvault.settings import Settings


async def test_close_delivers_everything_submitted_before_it(redis_url, tmp_path) -> None:
    app = create_celery(Settings(broker_url=redis_url))
    writer = QueueWriter.for_app(app, "recvault", 60, timeout=2, connect_timeout=2)
    handoff = Handoff(writer, Spool(tmp_path / "spool.sqlite3"), IngestMetrics(), batch_max=2)
    handoff.start(asyncio.get_running_loop())
    waiting = [asyncio.ensure_future(handoff.submit(build_message(app, "recvault", f"RE{n}:completed", {"n": n})))
               for n in range(25)]
    await asyncio.sleep(0)  # every submit() has put its event in the inbox
    await asyncio.get_running_loop().run_in_executor(None, handoff.close)  # as the app's cleanup does
    outcomes = await asyncio.wait_for(asyncio.gather(*waiting), 5)
    assert outcomes == [Outcome.QUEUED] * 25  # 13 batches, none left behind by the stop
    assert redis.Redis.from_url(redis_url).llen("recvault") == 25
