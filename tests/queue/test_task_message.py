"""The templated messages ingest writes are, byte for byte, the ones Celery's builder makes."""

from __future__ import annotations

import json
import uuid
from datetime import datetime
from pathlib import Path

import pytest

from recvault.queue import kombu_redis
from recvault.queue.celery_factory import ARCHIVE_TASK, create_celery
from recvault.queue.task_message import MessageTemplate
from recvault.queue.writer import _ORIGIN, TASK_ID_NAMESPACE, build_message, task_id_for
from recvault.settings import Settings


def _celery_built(app, queue: str, dedup_key: str, payload: dict, task_id: str, tag: str) -> str:
    headers, properties, body, _ = app.amqp.as_task_v2(
        task_id, ARCHIVE_TASK, args=(payload,), kwargs={}, ignore_result=True,
        argsrepr=f"({dedup_key!r},)", kwargsrepr="{}", origin=_ORIGIN,
    )
    return kombu_redis.envelope(body, headers, properties, routing_key=queue, delivery_tag=tag)


def test_a_rendered_message_is_the_text_celerys_builder_produces(redis_url: str) -> None:
    app = create_celery(Settings(broker_url=redis_url))
    template = MessageTemplate(app, "recvault", ARCHIVE_TASK, origin=_ORIGIN)
    # Values JSON must escape, non-ASCII and braces (the template is a str.format string).
    payload = {"params": {"RecordingSid": "RE" + "a" * 32, "Odd": 'quote " back \\ {brace} é ✓', "L": ["1", "2"]},
               "received_at": "2026-12-02T00:00:00+00:00", "idempotency_token": None}
    key = "RE" + "a" * 32 + ":completed"
    task_id = task_id_for(key)
    tag = "0b0f5f4e-5c1e-4b7e-9a4e-3f1d2c3b4a59"

    ours = template.render(task_id, f"({key!r},)", payload, tag)

    assert ours == _celery_built(app, "recvault", key, payload, task_id, tag)
    assert json.loads(ours)["headers"]["id"] == task_id


def test_build_message_gives_each_dedup_key_its_uuid5_task_id_and_a_fresh_uuid4_tag(redis_url: str) -> None:
    app = create_celery(Settings(broker_url=redis_url))
    first = build_message(app, "q", "RE1:completed", {"n": 1})
    again = build_message(app, "q", "RE1:completed", {"n": 1})

    assert first.task_id == again.task_id == str(uuid.uuid5(TASK_ID_NAMESPACE, "RE1:completed"))
    assert first.delivery_tag != again.delivery_tag
    for tag in (first.delivery_tag, again.delivery_tag):
        parsed = uuid.UUID(tag)
        assert (parsed.version, parsed.variant, str(parsed)) == (4, uuid.RFC_4122, tag)
    assert json.loads(first.message)["properties"]["delivery_tag"] == first.delivery_tag
    assert first.message == _celery_built(app, "q", "RE1:completed", {"n": 1}, first.task_id, first.delivery_tag)


EARLIER = Path(__file__).parents[1] / "workers" / "fixtures"


@pytest.mark.parametrize("path", sorted(p for p in EARLIER.glob("*.json") if json.loads(p.read_text())["dedup_key"]),
                         ids=lambda p: p.stem)
def test_this_release_writes_the_envelope_and_headers_earlier_releases_wrote(path: Path, redis_url: str) -> None:
    """Messages the queue writer of an earlier release queued, rebuilt from their parts, come out identical:
    the message format did not change, only the payloads did (tests/workers/test_upgrade.py)."""
    fixture = json.loads(path.read_text())
    earlier = json.dumps(fixture["message"], separators=(",", ":"))
    headers, tag = fixture["message"]["headers"], fixture["message"]["properties"]["delivery_tag"]
    app = create_celery(Settings(broker_url=redis_url))
    if headers["eta"] is None and not headers["retries"]:  # the template's messages
        template = MessageTemplate(app, "recvault", fixture["task"], origin=headers["origin"])
        ours = template.render(headers["id"], headers["argsrepr"], fixture["payload"], tag)
    else:  # build_message's others: Celery's builder, as build_message calls it
        built, properties, body, _ = app.amqp.as_task_v2(
            headers["id"], fixture["task"], args=(fixture["payload"],), kwargs={}, ignore_result=True,
            eta=datetime.fromisoformat(headers["eta"]) if headers["eta"] else None, retries=headers["retries"],
            argsrepr=headers["argsrepr"], kwargsrepr="{}", origin=headers["origin"])
        ours = kombu_redis.envelope(body, built, properties, routing_key="recvault", delivery_tag=tag)
    assert ours == earlier
    if fixture["dedup_key"] and headers["retries"] == 0:
        assert headers["id"] == task_id_for(fixture["dedup_key"])
