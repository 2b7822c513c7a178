"""`recvault dlq list|show|replay|drop` as a user runs it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, datetime

import pytest
import redis

from recvault.audit.append import read_chain_originals
from recvault.compliance.erasure import erase
from recvault.queue.celery_factory import ARCHIVE_TASK
from recvault.workers.dead_letters import DeadLetters
from tests.compliance.seed import seed


def _dlq(redis_url: str, *args: str, **variables: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "RECVAULT_BROKER_URL": redis_url, **variables}
    return subprocess.run([sys.executable, "-m", "recvault.cli", "dlq", *args], env=env,
                          capture_output=True, text=True, timeout=60)


@pytest.mark.system  # seven command processes
def test_list_show_replay_and_drop(redis_url, s3_store) -> None:
    letters = DeadLetters.connect(redis_url)
    payload = {"params": {"RecordingSid": "RE" + "1" * 32}, "received_at": "2026-11-24T00:00:00+00:00"}
    letters.add("RE" + "1" * 32 + ":completed", ARCHIVE_TASK, payload, reason="403 from Twilio",
                error="TwilioAuthFailed", attempts=1)
    letters.add("RE" + "2" * 32 + ":completed", ARCHIVE_TASK, payload, reason="gone",
                error="RecordingGone", attempts=1)

    # The archive bucket is missing here: listing says so and shows what Redis holds.
    nowhere = {"RECVAULT_S3_ENDPOINT_URL": s3_store.endpoint_url, "RECVAULT_S3_BUCKET": "no-such-archive"}
    listing = _dlq(redis_url, "list", **nowhere)
    assert listing.returncode == 0
    assert "listing Redis only" in listing.stderr  # no S3 configured: said, not hidden
    assert "TwilioAuthFailed" in listing.stdout and "403 from Twilio" in listing.stdout
    assert len(listing.stdout.splitlines()) == 2
    shown = json.loads(_dlq(redis_url, "show", "RE" + "1" * 32 + ":completed", **nowhere).stdout)
    assert shown["payload"] == payload

    replay = _dlq(redis_url, "replay", "RE" + "1" * 32 + ":completed", **nowhere)
    assert replay.returncode == 0 and "replayed 1" in replay.stdout
    queued = redis.Redis.from_url(redis_url).lrange("recvault", 0, -1)
    assert len(queued) == 1 and json.loads(queued[0])["headers"]["task"] == ARCHIVE_TASK

    assert _dlq(redis_url, "drop", "RE" + "2" * 32 + ":completed", **nowhere).returncode == 0
    assert letters.list() == []
    missing = _dlq(redis_url, "show", "nope", **nowhere)
    assert missing.returncode == 1 and "no dead letter" in missing.stderr
    assert _dlq(redis_url, "replay", **nowhere).returncode == 2


@pytest.mark.system  # three command processes
def test_dead_letters_outlive_a_redis_that_forgets_them(redis_url, s3_store) -> None:
    letters = DeadLetters.connect(redis_url, store=s3_store)
    payload = {"params": {"RecordingSid": "RE" + "3" * 32}, "received_at": "2026-11-24T00:00:00+00:00"}
    letter = letters.add("RE" + "3" * 32 + ":completed", ARCHIVE_TASK, payload, reason="gone",
                         error="RecordingGone", attempts=3)
    redis.Redis.from_url(redis_url).flushdb()  # a restart without persistence

    s3 = {"RECVAULT_S3_ENDPOINT_URL": s3_store.endpoint_url, "RECVAULT_S3_BUCKET": s3_store.bucket}
    listing = _dlq(redis_url, "list", "--json", **s3)
    assert listing.returncode == 0, listing.stderr
    [shown] = [json.loads(line) for line in listing.stdout.splitlines()]
    assert shown["id"] == letter.id and shown["failed_at"] == letter.failed_at and shown["reason"] == "gone"
    assert _dlq(redis_url, "drop", letter.id, **s3).returncode == 0
    assert _dlq(redis_url, "list", "--json", **s3).stdout.strip() == ""
    assert _dlq(redis_url, "list", **s3).stdout == "no dead letters\n"
    # Nothing is deleted: the letter and its resolution stay in the archive as history.
    assert len(list(s3_store.list_keys("dead-letters/"))) == 2


def test_a_replay_never_forgets_a_newer_failure_of_the_same_event(redis_url, s3_store) -> None:
    letters = DeadLetters.connect(redis_url, store=s3_store)
    payload = {"params": {"RecordingSid": "RE" + "4" * 32}, "received_at": "2026-11-24T00:00:00+00:00"}
    first = letters.add("RE" + "4" * 32 + ":completed", ARCHIVE_TASK, payload, reason="first", error="E",
                        attempts=1)

    def publish_and_fail_again(task: str, body: object) -> None:
        # The replayed event fails again before the replay has resolved its letter.
        letters.add(first.id, task, body, reason="second", error="E", attempts=1)

    letters.replay(first, publish_and_fail_again)
    current = letters.get(first.id)
    assert current is not None and current.reason == "second"
    assert [letter.reason for letter in letters.list()] == ["second"]


def test_an_empty_dead_letter_list_says_so(redis_url, s3_store) -> None:
    s3 = {"RECVAULT_S3_ENDPOINT_URL": s3_store.endpoint_url, "RECVAULT_S3_BUCKET": s3_store.bucket}
    listing = _dlq(redis_url, "list", **s3)
    assert listing.returncode == 0, listing.stderr
    assert listing.stdout == "no dead letters\n"
    assert _dlq(redis_url, "list", "--json", **s3).stdout == ""  # JSON lines: none is no line


@pytest.mark.system  # two command processes
def test_a_letter_about_an_erased_recording_is_not_replayed_and_stays_until_dropped(redis_url, s3_store) -> None:
    seeded = seed(s3_store)
    erase(s3_store, "", seeded.sid, reason="DSAR 10", requested_by="subject", actor="dpo", now=datetime.now(UTC))
    letters = DeadLetters.connect(redis_url, store=s3_store)
    letter = letters.add(f"{seeded.sid}:completed", ARCHIVE_TASK, {"params": {"RecordingSid": seeded.sid}},
                         reason="gone", error="RecordingGone", attempts=1)
    s3 = {"RECVAULT_S3_ENDPOINT_URL": s3_store.endpoint_url, "RECVAULT_S3_BUCKET": s3_store.bucket}

    replay = _dlq(redis_url, "replay", letter.id, **s3)

    assert replay.returncode == 1 and "replayed 0 event(s)" in replay.stdout
    assert f"not replayed {letter.id}: its recording was erased (tombstones/{seeded.sid}.json)" in replay.stderr
    assert redis.Redis.from_url(redis_url).llen("recvault") == 0
    assert [kept.id for kept in letters.list()] == [letter.id]
    entries = read_chain_originals(s3_store, "", seeded.sid).entries
    assert (entries[-1].action, entries[-1].details["asked_by"]) == ("archive-refused-erased", "dlq replay")
    assert _dlq(redis_url, "drop", letter.id, **s3).returncode == 0 and letters.list() == []
    letters.close()
