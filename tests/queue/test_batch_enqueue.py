"""A whole batch goes to Redis in one script call (kombu_redis.ENQUEUE_BATCH), with each message's own answer."""

from __future__ import annotations

import redis

from recvault.queue.celery_factory import create_celery
from recvault.queue.writer import QueueWriter, build_message
from recvault.settings import Settings


def test_a_full_batch_answers_each_message_in_order(redis_url: str) -> None:
    app = create_celery(Settings(broker_url=redis_url))
    writer = QueueWriter.for_app(app, "q", 3600, timeout=5, connect_timeout=1)
    client = redis.Redis.from_url(redis_url)
    try:
        seen = [build_message(app, "q", f"RE{n}:completed", {"n": n}) for n in range(0, 500, 2)]
        assert writer.enqueue(seen) == [True] * 250
        batch = [build_message(app, "q", f"RE{n}:completed", {"n": n}) for n in range(500)]

        answers = writer.enqueue(batch)

        assert answers == [n % 2 == 1 for n in range(500)]
        assert client.llen("q") == client.hlen("unacked") == client.zcard("unacked_index") == 500
    finally:
        writer.close()
        client.close()


def test_a_server_that_lost_its_scripts_gets_the_batch_anyway(redis_url: str) -> None:
    app = create_celery(Settings(broker_url=redis_url))
    writer = QueueWriter.for_app(app, "q", 3600, timeout=5, connect_timeout=1)
    client = redis.Redis.from_url(redis_url)
    try:
        assert writer.enqueue([build_message(app, "q", "RE1:completed", {"n": 1})]) == [True]
        client.script_flush()  # as after a restart

        assert writer.enqueue([build_message(app, "q", "RE2:completed", {"n": 2}),
                               build_message(app, "q", "RE1:completed", {"n": 1})]) == [True, False]
        assert writer.enqueue([]) == []
    finally:
        writer.close()
        client.close()
