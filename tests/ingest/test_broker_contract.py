"""The messages ingest writes are the messages Celery itself would write."""

from __future__ import annotations

import json

import redis

from recvault.queue.app import ARCHIVE_TASK, create_celery
from recvault.queue.writer import QueueWriter, build_message
from recvault.settings import Settings


def test_envelope_has_the_shape_celery_send_task_produces(redis_url: str) -> None:
    settings = Settings(broker_url=redis_url, queue="contract")
    app = create_celery(settings)
    app.send_task(ARCHIVE_TASK, args=({"params": {"x": "1"}},), queue="contract", ignore_result=True)
    client = redis.Redis.from_url(redis_url)
    theirs = json.loads(client.rpop("contract"))

    ours = json.loads(build_message(app, "contract", "RE1:completed", {"params": {"x": "1"}}).message)

    assert set(ours) == set(theirs)
    assert set(ours["properties"]) == set(theirs["properties"])
    assert set(theirs["headers"]) <= set(ours["headers"])
    assert ours["headers"]["task"] == theirs["headers"]["task"] == ARCHIVE_TASK
    assert ours["properties"]["delivery_info"]["routing_key"] == "contract"
    assert ours["properties"]["body_encoding"] == theirs["properties"]["body_encoding"] == "base64"
    assert ours["content-type"] == theirs["content-type"] == "application/json"


def test_enqueue_is_once_per_dedup_key_and_atomic(redis_url: str) -> None:
    settings = Settings(broker_url=redis_url)
    app = create_celery(settings)
    writer = QueueWriter.for_app(app, "q", 60, timeout=1, connect_timeout=1)
    first = build_message(app, "q", "RE1:completed", {"n": 1})
    second = build_message(app, "q", "RE1:completed", {"n": 2})
    other = build_message(app, "q", "RE1:absent", {"n": 3})
    assert writer.enqueue([first, second, other]) == [True, False, True]
    assert writer.enqueue([first]) == [False]
    client = redis.Redis.from_url(redis_url)
    assert client.llen("q") == 2
    assert 0 < client.ttl("recvault:seen:RE1:completed") <= 60
    # The same dedup key gives the same task id, so retries and logs line up.
    assert first.task_id == second.task_id != other.task_id
    writer.close()


def test_a_message_a_dying_worker_took_off_the_queue_is_handed_out_again(redis_url: str) -> None:
    settings = Settings(broker_url=redis_url, queue="q")
    app = create_celery(settings)
    writer = QueueWriter.for_app(app, "q", 60, timeout=1, connect_timeout=1)
    writer.enqueue([build_message(app, "q", "RE1:completed", {"n": 1})])
    client = redis.Redis.from_url(redis_url)
    taken = json.loads(client.rpop("q"))  # a worker's BRPOP: it dies before recording the message
    # kombu hands out unacknowledged messages older than the visibility timeout (0 s here).
    app.conf.broker_transport_options = {**app.conf.broker_transport_options, "visibility_timeout": 0}
    with app.connection_for_read() as connection:
        connection.default_channel.qos.restore_visible(num=None)
    restored = [json.loads(raw) for raw in client.lrange("q", 0, -1)]
    assert [m["headers"]["id"] for m in restored] == [taken["headers"]["id"]]
    writer.close()


def test_a_message_a_worker_acknowledges_leaves_no_record_behind(redis_url: str) -> None:
    settings = Settings(broker_url=redis_url, queue="q")
    app = create_celery(settings)
    writer = QueueWriter.for_app(app, "q", 60, timeout=1, connect_timeout=1)
    writer.enqueue([build_message(app, "q", "RE1:completed", {"n": 1})])
    client = redis.Redis.from_url(redis_url)
    with app.connection_for_read() as connection:
        message = connection.default_channel.basic_get("q")
        message.ack()
    assert client.llen("q") == 0 and client.hlen("unacked") == 0 and client.zcard("unacked_index") == 0
    writer.close()
