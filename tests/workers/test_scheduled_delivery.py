"""Scheduled tasks under the shared delivery policy: retried, dead-lettered and counted like the archive task."""

from __future__ import annotations

import base64
import json
import logging
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import redis
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from recvault.audit.write import write_audit
from recvault.launch.services import LaunchError, SeaweedFS
from recvault.queue.celery_factory import RECONCILE_TASK, SEAL_TASK, create_celery
from recvault.queue.kombu_redis import RedisKeys
from recvault.settings import Settings
from recvault.storage.s3 import S3Store
from recvault.workers.beat_schedule import seal_payload
from recvault.workers.context import ProcessContext
from recvault.workers.dead_letters import DeadLetters
from recvault.workers.metrics import WorkerMetrics
from recvault.workers.tasks import register_tasks
from tests.fixtures.services import start_or_fail

RE = "RE" + "1" * 32


def _value(metrics: WorkerMetrics, name: str, **labels: str) -> float:
    for family in text_string_to_metric_families(generate_latest(metrics.registry).decode()):
        for sample in family.samples:
            if sample.name == name and sample.labels == labels:
                return sample.value
    return 0.0


@pytest.fixture
def weed(tmp_path: Path) -> Iterator[SeaweedFS]:
    """A SeaweedFS of this test's own, free to be stopped and started again."""
    try:
        server = SeaweedFS(tmp_path / "weed")
    except LaunchError as error:
        pytest.fail(f"SeaweedFS is required for these tests: {error}")
    start_or_fail(server)
    yield server
    server.stop(timeout=2)


def test_a_seal_that_finds_s3_down_is_retried_and_its_runs_reach_the_task_metrics(
        weed, redis_url, tmp_path, caplog) -> None:
    settings = Settings(broker_url=redis_url, s3_bucket="sealing", s3_endpoint_url=weed.s3_url, data_dir=tmp_path)
    store = S3Store(settings.s3_bucket, endpoint_url=weed.s3_url)
    store.ensure_bucket(create=True)
    write_audit(store, "", RE, "archived", {}, None, datetime.now(UTC) - timedelta(days=1))  # a day to seal
    app = create_celery(settings)
    metrics = WorkerMetrics()
    process = ProcessContext(settings, app, metrics=metrics)
    process.build()
    register_tasks(app, process)
    task, payload = app.tasks[SEAL_TASK], seal_payload()

    weed.stop()  # S3 is down when the seal runs: StorageUnavailable, a transient failure
    with caplog.at_level(logging.WARNING, logger="recvault.worker"):
        assert task.apply(args=(payload,), task_id="seal-1").get() == "retrying"
    [retrying] = [r for r in caplog.records if r.getMessage() == "retrying"]
    assert retrying.task_id == "seal-1" and retrying.kind == "StorageUnavailable"

    # The retry is a follow-up on the queue: the same task id, one retry more, due after a backoff,
    # published once under the dedup key naming this attempt.
    client = redis.Redis.from_url(redis_url)
    [raw] = client.lrange(settings.queue, 0, -1)
    envelope = json.loads(raw)
    headers = envelope["headers"]
    assert (headers["task"], headers["id"], headers["retries"]) == (SEAL_TASK, "seal-1", 1)
    assert datetime.fromisoformat(headers["eta"]) > datetime.now(UTC)
    [args, _, _] = json.loads(base64.b64decode(envelope["body"]))
    assert args == [payload]
    keys = RedisKeys.for_queue(settings.queue, app.conf.broker_transport_options)
    letter_id = f"seal:{json.dumps(payload, sort_keys=True)}"
    assert client.exists(f"{keys.dedup_prefix}{letter_id}:seal-1:retry:1")

    weed.start()  # S3 is back when the retry runs
    sealed = task.apply(args=tuple(args), task_id=headers["id"], retries=headers["retries"]).get()
    assert sealed.endswith(" period(s) sealed") and int(sealed.split()[0]) > 0  # every hour since yesterday's first

    assert _value(metrics, "recvault_task_retries_total", error="StorageUnavailable") == 1
    assert _value(metrics, "recvault_tasks_total", task=SEAL_TASK, outcome="retrying") == 1
    assert _value(metrics, "recvault_tasks_total", task=SEAL_TASK, outcome="done") == 1
    assert _value(metrics, "recvault_task_seconds_count", task=SEAL_TASK) == 2
    assert _value(metrics, "recvault_task_seconds_sum", task=SEAL_TASK) > 0
    assert _value(metrics, "recvault_dead_letters_total", error="StorageUnavailable") == 0
    client.close()


def test_a_scheduled_task_with_a_bad_payload_is_dead_lettered_at_once_and_counted(
        s3_store, redis_url, tmp_path) -> None:
    settings = Settings(broker_url=redis_url, s3_bucket=s3_store.bucket, s3_endpoint_url=s3_store.endpoint_url,
                        data_dir=tmp_path)
    app = create_celery(settings)
    metrics = WorkerMetrics()
    process = ProcessContext(settings, app, metrics=metrics)
    process.build()
    register_tasks(app, process)

    window = {"date_from": "yesterday", "date_to": "2026-03-02"}
    assert app.tasks[RECONCILE_TASK].apply(args=(window,)).get() == "dead-lettered"

    letters = DeadLetters.connect(redis_url)
    letter = letters.get("reconcile:yesterday:2026-03-02")
    letters.close()
    assert letter is not None and letter.error == "InvalidSchedule" and letter.attempts == 1
    assert redis.Redis.from_url(redis_url).llen(settings.queue) == 0  # not retried
    assert _value(metrics, "recvault_tasks_total", task=RECONCILE_TASK, outcome="dead-lettered") == 1
    assert _value(metrics, "recvault_dead_letters_total", error="InvalidSchedule") == 1
    assert _value(metrics, "recvault_task_seconds_count", task=RECONCILE_TASK) == 1
    assert _value(metrics, "recvault_task_retries_total", error="InvalidSchedule") == 0
