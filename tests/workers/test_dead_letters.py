"""Permanent failures end in the dead-letter store with their reason, and can be replayed."""

from __future__ import annotations

from recvault.queue.celery_factory import ARCHIVE_TASK
from recvault.settings import Settings
from recvault.workers.dead_letters import DeadLetters
from tests.fixtures.worker import running_worker, wait_for

AC = "AC" + "a" * 32
RE = "RE" + "b" * 32


def _payload(host: str) -> dict:
    return {"params": {
        "AccountSid": AC, "RecordingSid": RE, "RecordingStatus": "completed",
        "RecordingUrl": f"https://{host}/2010-04-01/Accounts/{AC}/Recordings/{RE}",
        "RecordingDuration": "3", "RecordingChannels": "1",
    }, "received_at": "2026-11-24T00:00:00+00:00"}


def test_foreign_host_is_dead_lettered_without_a_request(redis_url, s3_store, tmp_path) -> None:
    settings = Settings(broker_url=redis_url, twilio_auth_tokens="token-for-dead-letter-test",
                        s3_endpoint_url=s3_store.endpoint_url, s3_bucket=s3_store.bucket,
                        data_dir=tmp_path, queue="dlq-test")
    letters = DeadLetters.connect(redis_url)
    with running_worker(settings) as app:
        app.send_task(ARCHIVE_TASK, args=(_payload("evil.example"),), queue="dlq-test")
        letter = wait_for(lambda: letters.get(f"{RE}:completed"), what="dead letter")
    assert letter.error == "ForeignHost"
    assert "evil.example" in letter.reason and "no request sent" in letter.reason
    assert letter.payload["params"]["RecordingSid"] == RE
    assert [entry.id for entry in letters.list()] == [f"{RE}:completed"]

    replayed = []
    letters.replay(letter, lambda task, payload: replayed.append((task, payload)))
    assert replayed == [(ARCHIVE_TASK, letter.payload)]
    assert letters.get(letter.id) is None
