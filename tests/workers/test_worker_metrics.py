"""What a worker counts, after real tasks on a real worker against the simulator and SeaweedFS."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from recvault.queue.celery_factory import create_celery
from recvault.queue.writer import QueueWriter, build_message
from recvault.settings import Settings
from recvault.simulator.callbacks import callback_params
from recvault.simulator.recordings import Faults
from recvault.workers.dead_letters import DeadLetters
from recvault.workers.metrics import WorkerMetrics
from tests.fixtures.worker import running_worker, wait_for


def _value(metrics: WorkerMetrics, name: str, **labels: str) -> float:
    for family in text_string_to_metric_families(generate_latest(metrics.registry).decode()):
        for sample in family.samples:
            if sample.name == name and sample.labels == labels:
                return sample.value
    return 0.0


def test_a_worker_counts_archives_retries_dead_letters_and_twilio_errors(
        redis_url, tmp_path, sim, sim_account, s3_store) -> None:
    settings = Settings(
        twilio_auth_tokens=sim_account.token, twilio_account_sid=sim_account.sid, twilio_api_base_url=sim.base_url,
        broker_url=redis_url, data_dir=tmp_path, s3_bucket=s3_store.bucket, s3_endpoint_url=s3_store.endpoint_url,
        max_retries=3, retry_backoff_max_seconds=1, not_found_grace_seconds=0, queue="metrics",
    )
    flaky = sim.create_recording(duration=4, faults=Faults(server_errors=1))
    gone = sim.create_recording(duration=2, faults=Faults(gone=True))
    received = (datetime.now(UTC) - timedelta(seconds=2)).isoformat()
    app = create_celery(settings)
    writer = QueueWriter.for_app(app, "metrics", 60, timeout=2, connect_timeout=2)
    metrics = WorkerMetrics()
    with running_worker(settings, metrics=metrics):
        writer.enqueue([build_message(app, "metrics", f"{rec.sid}:completed",
                                      {"params": callback_params(rec, "completed", api_base=sim.base_url),
                                       "received_at": received}) for rec in (flaky, gone)])
        letters = DeadLetters.connect(redis_url)
        wait_for(lambda: list(s3_store.list_keys("metadata/")) and letters.get(f"{gone.sid}:completed"),
                 timeout=60, what="one archive and one dead letter")
        wait_for(lambda: _value(metrics, "recvault_tasks_total", task="recvault.archive_event",
                                outcome="dead-lettered"), timeout=10, what="the task counted")
    writer.close()
    letters.close()
    assert _value(metrics, "recvault_archived_recordings_total") == 1
    assert _value(metrics, "recvault_archived_bytes_total") == sim.expected(flaky, "wav")[0]
    assert _value(metrics, "recvault_task_retries_total", error="TwilioUnavailable") == 1
    assert _value(metrics, "recvault_dead_letters_total", error="RecordingGone") == 1
    assert _value(metrics, "recvault_twilio_errors_total", status="503") == 1
    assert _value(metrics, "recvault_twilio_errors_total", status="404") >= 1
    assert _value(metrics, "recvault_tasks_total", task="recvault.archive_event", outcome="archived") == 1
    assert _value(metrics, "recvault_tasks_total", task="recvault.archive_event", outcome="retrying") == 1
    assert _value(metrics, "recvault_task_seconds_count", task="recvault.archive_event") == 3
    assert _value(metrics, "recvault_archives_in_flight") == 0
    assert 2 <= _value(metrics, "recvault_callback_to_archive_seconds_sum") < 60
