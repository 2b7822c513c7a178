"""The local spool: durable, ordered, deduplicated; and the hand-off's use of it."""

from __future__ import annotations

import asyncio
from pathlib import Path

from aiohttp.test_utils import TestClient, TestServer

from recvault.ingest.app import create_app
from recvault.ingest.spool import Spool
from recvault.launch.services import free_port
from recvault.queue.writer import Outgoing
from recvault.settings import Settings
from tests.ingest.conftest import TOKEN, callback_params, post_callback


def _item(n: int) -> Outgoing:
    return Outgoing(f"RE{n}:completed", f"message-{n}", f"task-{n}")


def test_spool_keeps_order_and_ignores_duplicates(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "s.sqlite3")
    spool.append([_item(1), _item(2)])
    spool.append([_item(1), _item(3)])
    rows = spool.oldest(10)
    assert [item.message for _, item in rows] == ["message-1", "message-2", "message-3"]
    spool.remove([rows[0][0]])
    assert spool.depth() == 2
    spool.close()


def test_spool_survives_reopening(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "s.sqlite3")
    spool.append([_item(1)])
    spool.close()
    again = Spool(tmp_path / "s.sqlite3")
    assert [item.dedup_key for _, item in again.oldest(10)] == ["RE1:completed"]
    again.close()


async def test_unreachable_broker_spools_and_still_answers_2xx(tmp_path: Path) -> None:
    dead = f"redis://127.0.0.1:{free_port()}/0"
    settings = Settings(twilio_auth_tokens=TOKEN, broker_url=dead, data_dir=tmp_path,
                        publish_timeout_seconds=0.3, redis_connect_timeout_seconds=0.3)
    async with TestClient(TestServer(create_app(settings))) as client:
        params = callback_params()
        responses = await asyncio.gather(*(post_callback(client, params) for _ in range(3)),
                                         post_callback(client, callback_params()))
        assert [r.status for r in responses] == [204] * 4
        ready = await (await client.get("/readyz")).json()
        assert ready == {"status": "degraded", "broker": "down", "spool": "ok", "spool_depth": 2}
        metrics = await (await client.get("/metrics")).text()
        assert 'recvault_callbacks_accepted_total{outcome="spooled"} 4.0' in metrics
    spool = Spool(settings.spool_dir / "callbacks.sqlite3")
    assert spool.depth() == 2
    spool.close()
