"""Delivery policy: follow-ups published once and safely; no failure acknowledged unrecorded."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest
import redis
from celery.exceptions import Reject
from celery.worker.request import Request

from recvault.launch.services import free_port
from recvault.queue.celery_factory import ARCHIVE_TASK, create_celery
from recvault.queue.writer import QueueWriter, build_message
from recvault.settings import Settings
from recvault.workers.context import ProcessContext
from recvault.workers.delivery import deliver, publish_follow_up
from recvault.workers.tasks import register_tasks


def test_a_broker_failure_while_publishing_a_follow_up_requeues_instead_of_dropping() -> None:
    dead = f"redis://127.0.0.1:{free_port()}/0"
    settings = Settings(broker_url=dead, queue="q")
    app = create_celery(settings)
    writer = QueueWriter.for_app(app, "q", 60, timeout=0.5, connect_timeout=0.5)
    with pytest.raises(Reject) as caught:
        publish_follow_up(app, writer, "q", task=ARCHIVE_TASK, payload={}, dedup_key="RE1:completed:retry:1",
                          delay=5, retries=1)
    assert caught.value.requeue is True
    assert "ConnectionError" in str(caught.value.reason)


def test_a_follow_up_is_published_once_per_attempt_and_keeps_the_task_id(redis_url: str) -> None:
    settings = Settings(broker_url=redis_url, queue="q")
    app = create_celery(settings)
    writer = QueueWriter.for_app(app, "q", 60, timeout=2, connect_timeout=2)
    for _ in range(2):  # a redelivered task publishes its retry again: it is queued once
        publish_follow_up(app, writer, "q", task=ARCHIVE_TASK, payload={"n": 1}, dedup_key="RE1:retry:3",
                          task_id="the-task", delay=30, retries=3)
    [raw] = redis.Redis.from_url(redis_url).lrange("q", 0, -1)
    headers = json.loads(raw)["headers"]
    assert headers["id"] == "the-task" and headers["retries"] == 3 and headers["eta"] is not None
    writer.close()


def test_a_task_stopped_by_the_hard_time_limit_goes_back_to_the_queue(redis_url: str) -> None:
    """Celery's own timeout handling, on a real message from Redis, as a prefork worker runs it."""
    settings = Settings(broker_url=redis_url, queue="q")
    app = create_celery(settings)
    register_tasks(app, ProcessContext(settings, app))
    message = build_message(app, "q", "RE1:completed", {"params": {}})
    writer = QueueWriter.for_app(app, "q", 60, timeout=2, connect_timeout=2)
    writer.enqueue([message])
    client = redis.Redis.from_url(redis_url)
    with app.connection_for_read() as connection:
        taken = connection.default_channel.basic_get("q")  # what the worker holds while the task runs
        assert client.llen("q") == 0
        request = Request(taken, app=app, task=app.tasks[ARCHIVE_TASK], hostname="w@test",
                          on_ack=taken.ack_log_error, on_reject=taken.reject_log_error,
                          connection_errors=connection.connection_errors)
        request.on_timeout(soft=False, timeout=settings.task_time_limit_seconds)
        # Handed back at once: the message is on the queue again, not acknowledged and gone.
        assert [json.loads(raw)["headers"]["id"] for raw in client.lrange("q", 0, -1)] == [message.task_id]
    writer.close()


def test_a_redis_blip_while_counting_deliveries_runs_the_task_instead_of_dead_lettering_it(s3_store) -> None:
    dead = f"redis://127.0.0.1:{free_port()}/0"  # nothing listens: every Redis call fails at once
    settings = Settings(broker_url=dead, queue="q", s3_endpoint_url=s3_store.endpoint_url,
                        s3_bucket=s3_store.bucket, redis_connect_timeout_seconds=0.5, redis_socket_timeout_seconds=0.5)
    app = create_celery(settings)
    process = ProcessContext(settings, app)
    process.build()
    task = SimpleNamespace(request=SimpleNamespace(id="task-1", retries=0), name=ARCHIVE_TASK)
    ran = []
    outcome = deliver(task, process, "RE1:completed", {}, lambda ctx: ran.append(ctx) or "archived")
    assert outcome == "archived" and len(ran) == 1


@pytest.mark.parametrize("body_outcome", ["archived", "fails for good"])
def test_an_attempt_that_ends_leaves_no_delivery_count_behind(redis_url: str, s3_store, body_outcome: str) -> None:
    # A count outlives only deliveries that never end (a worker killed mid-task): Redis does not keep
    # one key per task for a day.
    from recvault.errors import PermanentError

    settings = Settings(broker_url=redis_url, queue="q", s3_endpoint_url=s3_store.endpoint_url,
                        s3_bucket=s3_store.bucket)
    process = ProcessContext(settings, create_celery(settings))
    process.build()
    task = SimpleNamespace(request=SimpleNamespace(id="task-2", retries=0), name=ARCHIVE_TASK)

    def body(ctx: object) -> str:
        if body_outcome == "archived":
            counted = redis.Redis.from_url(redis_url).keys("*deliveries:task-2:0")
            assert counted, "the delivery is counted while it runs"
            return "archived"
        raise PermanentError("bad event")

    deliver(task, process, "RE1:completed", {}, body)
    assert redis.Redis.from_url(redis_url).keys("*deliveries:*") == []
