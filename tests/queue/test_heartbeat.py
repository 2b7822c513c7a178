"""Pending records, the heartbeat's sweep and heartbeat, against kombu's real restore on real Redis."""

from __future__ import annotations

import json
import time

import redis

from recvault.queue.celery_factory import create_celery
from recvault.queue.heartbeat import UnackedHeartbeat
from recvault.queue.writer import QueueWriter, build_message
from recvault.settings import Settings

GRACE = 30.0


def setup(redis_url: str, held: list[str] | None = None):
    settings = Settings(broker_url=redis_url, queue="q")
    app = create_celery(settings)
    writer = QueueWriter.for_app(app, "q", 60, timeout=2, connect_timeout=2)
    heartbeat = UnackedHeartbeat(writer.client, writer.keys, "q", held=lambda: list(held or []), heartbeat=10,
                           pending_grace=GRACE)
    return app, writer, heartbeat, redis.Redis.from_url(redis_url)


def kombu_restore(app, visibility_timeout: float) -> None:
    """What a live consumer's periodic sweep does, with the given visibility timeout."""
    app.conf.broker_transport_options = {**app.conf.broker_transport_options, "visibility_timeout": visibility_timeout}
    with app.connection_for_read() as connection:
        connection.default_channel.qos.restore_visible(num=None)


def ids(client: redis.Redis) -> list[str]:
    return [json.loads(raw)["headers"]["id"] for raw in client.lrange("q", 0, -1)]


def test_a_message_waiting_in_the_queue_is_never_handed_out_twice(redis_url: str) -> None:
    app, writer, heartbeat, client = setup(redis_url)
    message = build_message(app, "q", "RE1:completed", {"n": 1})
    writer.enqueue([message])
    kombu_restore(app, visibility_timeout=0)  # however long it has waited
    assert heartbeat.sweep(now=time.time() + 3600) == 0  # still on the queue: left alone
    assert ids(client) == [message.task_id]


def test_a_message_a_worker_took_and_died_with_is_restored_once(redis_url: str) -> None:
    app, writer, heartbeat, client = setup(redis_url)
    message = build_message(app, "q", "RE1:completed", {"n": 1})
    writer.enqueue([message])
    client.rpop("q")  # a worker's BRPOP; it is killed before kombu records the message
    assert heartbeat.sweep() == 0  # not yet: a worker may be recording it this very moment
    later = time.time() + GRACE + 1
    assert heartbeat.sweep(now=later) == 1
    assert heartbeat.sweep(now=later) == 0  # pending again, and on the queue: once
    assert ids(client) == [message.task_id]
    # The restored message is what a consumer reads, and a worker can take and finish it.
    with app.connection_for_read() as connection:
        taken = connection.default_channel.basic_get("q")
        assert taken is not None and taken.headers["id"] == message.task_id
        taken.ack()
    assert client.hlen("unacked") == 0 and client.zcard("unacked_index") == 0


def test_the_heartbeat_keeps_what_a_live_worker_holds(redis_url: str) -> None:
    held: list[str] = []
    app, writer, heartbeat, client = setup(redis_url, held)
    message = build_message(app, "q", "RE1:completed", {"n": 1})
    writer.enqueue([message])
    with app.connection_for_read() as connection:
        taken = connection.default_channel.basic_get("q")  # recorded by kombu: taken now
        assert taken is not None
        held.append(message.delivery_tag)
        client.zadd("unacked_index", {message.delivery_tag: time.time() - 100})  # 100 s into a long task
        assert heartbeat.beat() == 1
        kombu_restore(app, visibility_timeout=30)
        assert client.llen("q") == 0  # alive and beating: not handed to anyone else
        held.clear()  # the worker died: no more beats
        client.zadd("unacked_index", {message.delivery_tag: time.time() - 31})
        kombu_restore(app, visibility_timeout=30)
        assert ids(client) == [message.task_id]
        client.delete("q", "unacked", "unacked_index")  # the closing consumer would restore it again


def test_the_heartbeat_never_brings_back_an_acknowledged_message(redis_url: str) -> None:
    app, writer, heartbeat, client = setup(redis_url, held=["tag-already-acknowledged"])
    assert heartbeat.beat() == 0
    assert client.zcard("unacked_index") == 0
