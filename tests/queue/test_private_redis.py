"""The tests' Redis is one this run started: a developer's own Redis is never written or flushed."""

from __future__ import annotations

from pathlib import Path

import redis

from tests.fixtures.redis import NAMED_REDIS


def test_the_run_uses_a_redis_server_it_started_itself(shared_redis_base: str, tmp_path_factory) -> None:
    if NAMED_REDIS:
        # A server set aside for tests was named: that one, and no other, is used.
        assert shared_redis_base == NAMED_REDIS
        return
    client = redis.Redis.from_url(shared_redis_base)
    try:
        directory = Path(client.config_get("dir")["dir"]).resolve()
        port = client.connection_pool.connection_kwargs["port"]
    finally:
        client.close()
    # Its data directory is inside this run's temporary folder, and it is not the default port.
    assert directory.is_relative_to(tmp_path_factory.getbasetemp().resolve())
    assert port != 6379


def test_a_test_database_is_empty_when_the_test_starts(redis_url: str) -> None:
    client = redis.Redis.from_url(redis_url)
    try:
        assert client.dbsize() == 0
        client.set("left-behind", "1")  # flushed after the test, on this run's own server
    finally:
        client.close()
