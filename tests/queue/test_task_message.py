"""The templated messages ingest writes are, byte for byte, the ones Celery's builder makes."""

from __future__ import annotations

import json
import uuid

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
