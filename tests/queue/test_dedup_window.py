"""Ingest's dedup window: an hour by default, a bare marker per key, and nothing remembered after it."""

from __future__ import annotations

import time

import redis

from recvault.queue.celery_factory import create_celery
from recvault.queue.writer import SEEN, QueueWriter, build_message
from recvault.settings import DEDUP_TTL_SECONDS, Settings

# Twilio's longest window for one callback's attempts, retries included (`tt` ≤ 15 s).
TWILIO_RETRY_WINDOW_SECONDS = 15


def test_the_default_window_is_an_hour_and_outlasts_twilios_retries_many_times() -> None:
    assert Settings().dedup_ttl_seconds == DEDUP_TTL_SECONDS == 3600
    assert DEDUP_TTL_SECONDS >= 100 * TWILIO_RETRY_WINDOW_SECONDS


def test_a_callback_is_remembered_for_the_window_by_a_bare_marker(redis_url: str) -> None:
    settings = Settings(broker_url=redis_url)
    app = create_celery(settings)
    writer = QueueWriter.for_app(app, "q", settings.dedup_ttl_seconds, timeout=1, connect_timeout=1)
    client = redis.Redis.from_url(redis_url)
    try:
        assert writer.enqueue([build_message(app, "q", "RE1:completed", {"n": 1})]) == [True]
        # A repeat inside the window (Twilio's retry, a replay) is refused.
        assert writer.enqueue([build_message(app, "q", "RE1:completed", {"n": 2})]) == [False]
        assert client.get("recvault:seen:RE1:completed") == SEEN.encode()
        assert DEDUP_TTL_SECONDS - 5 <= client.ttl("recvault:seen:RE1:completed") <= DEDUP_TTL_SECONDS
    finally:
        writer.close()
        client.close()


def test_after_the_window_a_repeat_is_queued_again_for_the_worker_to_absorb(redis_url: str) -> None:
    settings = Settings(broker_url=redis_url)
    app = create_celery(settings)
    writer = QueueWriter.for_app(app, "q", settings.dedup_ttl_seconds, timeout=1, connect_timeout=1)
    client = redis.Redis.from_url(redis_url)
    try:
        assert writer.enqueue([build_message(app, "q", "RE2:completed", {"n": 1})]) == [True]
        client.pexpire("recvault:seen:RE2:completed", 1)  # the hour, passed
        deadline = time.monotonic() + 2
        while client.exists("recvault:seen:RE2:completed") and time.monotonic() < deadline:
            time.sleep(0.005)
        assert writer.enqueue([build_message(app, "q", "RE2:completed", {"n": 2})]) == [True]
        assert client.llen("q") == 2
    finally:
        writer.close()
        client.close()
