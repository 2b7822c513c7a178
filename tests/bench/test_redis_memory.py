"""The Redis memory script, in a quick form against the test Redis."""

from __future__ import annotations

import redis

from bench import redis_memory


def test_it_reports_what_each_callback_keeps_in_redis_and_cleans_up(redis_url: str) -> None:
    result = redis_memory.measure(redis_url, 60, dedup_ttl=3600, prefix="memory-test:")

    usage = result["memory_usage_bytes"]
    # A dedup key is its name (~58 bytes) plus Redis's bookkeeping; far from a message's size.
    assert 60 < usage["dedup_key"] < 200
    assert usage["dedup_key_after_ack"] == usage["dedup_key"]
    # While queued, a callback's message sits in the list and, in full, in kombu's unacked record.
    assert usage["queue_entry"] >= result["message_bytes"] > 1000
    assert usage["unacked_record"] >= result["message_bytes"]
    assert 0 < usage["unacked_index_entry"] < 300
    assert 3590 <= result["dedup_key_ttl_now"] <= 3600
    client = redis.Redis.from_url(redis_url)
    assert not list(client.scan_iter(match="memory-test:*"))
    client.close()


def test_sizing_counts_the_keys_one_window_holds() -> None:
    measured = {"dedup_ttl_seconds": 3600, "used_memory_per_callback": {"queued": 4000.0, "acknowledged": 170.0}}

    plan = redis_memory.sizing(measured, 1_000_000)

    assert plan["dedup_keys_alive"] == 41_667
    assert plan["dedup_bytes"] == round(1_000_000 / 24 * 170)
    assert plan["backlog_bytes_per_hour_of_worker_outage"] == round(1_000_000 / 24 * 4000)
