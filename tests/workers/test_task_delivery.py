"""Delivery policy: a follow-up that cannot be published hands the message back."""

from __future__ import annotations

import json

import pytest
import redis
from celery.exceptions import Reject, Retry
from celery.worker.request import Request

from recvault.queue.app import ARCHIVE_TASK, create_celery
from recvault.queue.writer import QueueWriter, build_message
from recvault.settings import Settings
from recvault.workers.context import ProcessContext
from recvault.workers.tasks import _publish_or_requeue, register_tasks


def test_a_broker_failure_while_publishing_requeues_instead_of_dropping() -> None:
    def publish():
        raise redis.ConnectionError("broker gone")

    with pytest.raises(Reject) as caught:
        _publish_or_requeue(publish)
    assert caught.value.requeue is True
    assert "ConnectionError" in str(caught.value.reason)


def test_a_retry_still_propagates_as_a_retry() -> None:
    def publish():
        raise Retry("again", when=5)

    with pytest.raises(Retry):
        _publish_or_requeue(publish)


def test_a_task_stopped_by_the_hard_time_limit_goes_back_to_the_queue(redis_url: str) -> None:
    """Celery's own timeout handling, on a real message from Redis, as a prefork worker runs it."""
    settings = Settings(broker_url=redis_url, queue="q")
    app = create_celery(settings)
    register_tasks(app, ProcessContext(settings))
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
        request.on_timeout(soft=False, timeout=settings.task_time_limit)
        # Handed back at once: the message is on the queue again, not acknowledged and gone.
        assert [json.loads(raw)["headers"]["id"] for raw in client.lrange("q", 0, -1)] == [message.task_id]
    writer.close()
