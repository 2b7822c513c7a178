"""The hourly pass over queued erasures, as beat publishes it and a worker runs it."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from recvault import layout
from recvault.compliance.erasure import erase
from recvault.compliance.hold_selector import Selector
from recvault.compliance.holds import release_hold, set_hold
from recvault.queue.celery_factory import ERASE_DUE_TASK, create_celery
from recvault.settings import Settings
from recvault.versions import MESSAGE_VERSION
from recvault.workers.beat_schedule import beat_schedule, erase_due_payload
from recvault.workers.context import ProcessContext
from recvault.workers.tasks import register_tasks
from tests.compliance.seed import seed


def test_beat_schedules_the_erasure_pass_hourly_with_a_payload_naming_the_hour() -> None:
    entry = beat_schedule()["due-erasures"]
    assert entry["task"] == ERASE_DUE_TASK and entry["schedule"].minute == {15}
    assert erase_due_payload() == {"v": MESSAGE_VERSION, "hour": datetime.now(UTC).strftime("%Y-%m-%dT%H")}


@pytest.mark.system  # builds a whole worker context: about 1.5 s
def test_the_worker_task_erases_a_queued_request_once_its_hold_is_released(s3_store, s3_endpoint, redis_url,
                                                                          tmp_path) -> None:
    settings = Settings(broker_url=redis_url, s3_bucket=s3_store.bucket, s3_endpoint_url=s3_endpoint,
                        data_dir=tmp_path)
    app = create_celery(settings)
    process = ProcessContext(settings, app)
    process.build()
    register_tasks(app, process)
    seeded = seed(s3_store)
    hold, _ = set_hold(s3_store, "", Selector((seeded.sid,)), reason="case", actor="legal", now=datetime.now(UTC))
    assert erase(s3_store, "", seeded.sid, reason="DSAR 1", requested_by="subject", actor="dana",
                 now=datetime.now(UTC), when_allowed=True).status == "queued"

    task = app.tasks[ERASE_DUE_TASK]
    assert task.apply(args=(erase_due_payload(),)).get() == "0 erased, 1 waiting"
    release_hold(s3_store, "", hold.hold_id, reason="closed", actor="legal", now=datetime.now(UTC))
    assert task.apply(args=(erase_due_payload(),)).get() == "1 erased, 0 waiting"
    assert s3_store.head(seeded.media_key) is None
    assert s3_store.head(layout.tombstone_key("", seeded.sid)) is not None
    assert task.apply(args=(erase_due_payload(),)).get() == "0 erased, 0 waiting"
