"""Delivery policy: a follow-up that cannot be published hands the message back."""

from __future__ import annotations

import pytest
import redis
from celery.exceptions import Reject, Retry

from recvault.queue.app import create_celery
from recvault.settings import Settings
from recvault.workers.tasks import _publish_or_requeue


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


def test_hard_time_limit_is_not_acknowledged() -> None:
    conf = create_celery(Settings()).conf
    assert conf.task_acks_late and conf.task_reject_on_worker_lost
    assert conf.task_acks_on_timeout is False and conf.worker_prefetch_multiplier == 1
    assert conf.broker_transport_options["visibility_timeout"] > conf.task_time_limit
