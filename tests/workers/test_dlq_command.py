"""`recvault dlq list|show|replay|drop` as a user runs it."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import redis

from recvault.queue.app import ARCHIVE_TASK
from recvault.workers.dlq import DeadLetters


def _dlq(redis_url: str, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "RECVAULT_BROKER_URL": redis_url}
    return subprocess.run([sys.executable, "-m", "recvault.cli", "dlq", *args], env=env,
                          capture_output=True, text=True, timeout=60)


def test_list_show_replay_and_drop(redis_url) -> None:
    letters = DeadLetters.connect(redis_url)
    payload = {"params": {"RecordingSid": "RE" + "1" * 32}, "received_at": "2026-11-24T00:00:00+00:00"}
    letters.add("RE" + "1" * 32 + ":completed", ARCHIVE_TASK, payload, reason="403 from Twilio",
                error="TwilioAuthFailed", attempts=1)
    letters.add("RE" + "2" * 32 + ":completed", ARCHIVE_TASK, payload, reason="gone",
                error="RecordingGone", attempts=1)

    listing = _dlq(redis_url, "list")
    assert listing.returncode == 0
    assert "TwilioAuthFailed" in listing.stdout and "403 from Twilio" in listing.stdout
    assert len(listing.stdout.splitlines()) == 2
    shown = json.loads(_dlq(redis_url, "show", "RE" + "1" * 32 + ":completed").stdout)
    assert shown["payload"] == payload

    replay = _dlq(redis_url, "replay", "RE" + "1" * 32 + ":completed")
    assert replay.returncode == 0 and "replayed 1" in replay.stdout
    queued = redis.Redis.from_url(redis_url).lrange("recvault", 0, -1)
    assert len(queued) == 1 and json.loads(queued[0])["headers"]["task"] == ARCHIVE_TASK

    assert _dlq(redis_url, "drop", "RE" + "2" * 32 + ":completed").returncode == 0
    assert letters.list() == []
    missing = _dlq(redis_url, "show", "nope")
    assert missing.returncode == 1 and "no dead letter" in missing.stderr
    assert _dlq(redis_url, "replay").returncode == 2
