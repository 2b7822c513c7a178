"""The messages ingest writes are the messages Celery itself would write."""

from __future__ import annotations

import json
import socket
import tomllib
from importlib.metadata import version
from pathlib import Path

import kombu
import kombu.transport.redis
import pytest
import redis
from packaging.requirements import Requirement

from recvault.errors import ConfigurationError
from recvault.queue import kombu_transport
from recvault.queue.celery_factory import ARCHIVE_TASK, create_celery
from recvault.queue.writer import QueueWriter, build_message
from recvault.settings import Settings
from tests.fixtures.worker import wait_for

ROOT = Path(__file__).resolve().parents[2]


def test_envelope_has_the_shape_celery_send_task_produces(redis_url: str) -> None:
    settings = Settings(broker_url=redis_url, queue="contract")
    app = create_celery(settings)
    app.send_task(ARCHIVE_TASK, args=({"params": {"x": "1"}},), queue="contract", ignore_result=True)
    client = redis.Redis.from_url(redis_url)
    theirs = json.loads(client.rpop("contract"))

    ours = json.loads(build_message(app, "contract", "RE1:completed", {"params": {"x": "1"}}).message)

    assert set(ours) == set(theirs)
    assert set(ours["properties"]) == set(theirs["properties"])
    assert set(theirs["headers"]) <= set(ours["headers"])
    assert ours["headers"]["task"] == theirs["headers"]["task"] == ARCHIVE_TASK
    assert ours["properties"]["delivery_info"]["routing_key"] == "contract"
    assert ours["properties"]["body_encoding"] == theirs["properties"]["body_encoding"] == "base64"
    assert ours["content-type"] == theirs["content-type"] == "application/json"


def test_enqueue_is_once_per_dedup_key_and_atomic(redis_url: str) -> None:
    settings = Settings(broker_url=redis_url)
    app = create_celery(settings)
    writer = QueueWriter.for_app(app, "q", 60, timeout=1, connect_timeout=1)
    first = build_message(app, "q", "RE1:completed", {"n": 1})
    second = build_message(app, "q", "RE1:completed", {"n": 2})
    other = build_message(app, "q", "RE1:absent", {"n": 3})
    assert writer.enqueue([first, second, other]) == [True, False, True]
    assert writer.enqueue([first]) == [False]
    client = redis.Redis.from_url(redis_url)
    assert client.llen("q") == 2
    assert 0 < client.ttl("recvault:seen:RE1:completed") <= 60
    # The same dedup key gives the same task id, so retries and logs line up.
    assert first.task_id == second.task_id != other.task_id
    writer.close()


def test_a_message_a_worker_acknowledges_leaves_no_record_behind(redis_url: str) -> None:
    settings = Settings(broker_url=redis_url, queue="q")
    app = create_celery(settings)
    writer = QueueWriter.for_app(app, "q", 60, timeout=1, connect_timeout=1)
    writer.enqueue([build_message(app, "q", "RE1:completed", {"n": 1})])
    client = redis.Redis.from_url(redis_url)
    with app.connection_for_read() as connection:
        message = connection.default_channel.basic_get("q")
        message.ack()
    assert client.llen("q") == 0 and client.hlen("unacked") == 0 and client.zcard("unacked_index") == 0
    writer.close()


def test_the_writer_follows_a_key_prefix_and_renamed_unacked_keys(redis_url: str) -> None:
    options = {"global_keyprefix": "tenant-a:", "unacked_key": "held", "unacked_index_key": "held_index"}
    settings = Settings(broker_url=redis_url, queue="q", broker_transport_options=options)
    app = create_celery(settings)
    writer = QueueWriter.for_app(app, "q", 60, timeout=1, connect_timeout=1)
    message = build_message(app, "q", "RE1:completed", {"n": 1})
    assert writer.enqueue([message]) == [True]
    client = redis.Redis.from_url(redis_url)
    assert client.llen("tenant-a:q") == 1 and client.hlen("tenant-a:held") == 1
    assert client.zcard("tenant-a:held_index") == 1 and client.exists("tenant-a:recvault:seen:RE1:completed")
    assert not client.exists("q") and not client.exists("unacked")
    # kombu, configured the same way, takes the message from where the writer put it and
    # holds it under the renamed keys …
    with app.connection_for_read() as connection:
        taken = connection.default_channel.basic_get("q")
        assert taken is not None and taken.headers["id"] == message.task_id
        assert client.hlen("tenant-a:held") == 1 and client.llen("tenant-a:q") == 0
    # … and, closed without acknowledging it, hands it back from those keys to the queue.
    assert client.hlen("tenant-a:held") == 0
    assert [json.loads(raw)["headers"]["id"] for raw in client.lrange("tenant-a:q", 0, -1)] == [message.task_id]
    writer.close()


@pytest.mark.parametrize(("options", "named"), [
    ({"ack_emulation": False}, "ack_emulation"),
    ({"body_encoding": "plain"}, "body_encoding"),
    ({"some_future_option": 1}, "some_future_option"),
])
def test_options_the_writer_cannot_honour_are_refused_at_start(options: dict, named: str) -> None:
    with pytest.raises(ConfigurationError, match=f"RECVAULT_BROKER_TRANSPORT_OPTIONS.*{named}"):
        create_celery(Settings(broker_transport_options=options))


def test_connection_options_are_accepted_and_reach_celery() -> None:
    options = {"master_name": "mymaster", "socket_keepalive": False, "visibility_timeout": 600}
    app = create_celery(Settings(broker_transport_options=options))
    assert app.conf.broker_transport_options["master_name"] == "mymaster"
    assert app.conf.broker_transport_options["visibility_timeout"] == 600


def test_installed_celery_and_kombu_are_the_versions_this_contract_covers() -> None:
    requirements = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    for name in ("celery", "kombu"):
        [spec] = [Requirement(r).specifier for r in requirements if Requirement(r).name == name]
        assert version(name) in spec, f"{name} {version(name)} is outside {spec}, which this test covers"


# --- a channel closed after its connection (recvault.queue.kombu_transport) -------------------
STOCK_REDIS_TRANSPORT = "kombu.transport.redis:Transport"


def _hold_then_lose_the_broker(url: str, options: dict, take_down, *, transport: str | None = None):
    """What a Celery worker's consumer meets when the broker goes away under it.

    Two channels hold messages (a worker's task channel and, say, its event channel), the
    first waits in BRPOP; the broker goes; Celery then collects the connection and closes
    it (celery.worker.consumer.Consumer.on_connection_error_after_connected). Returns the
    held messages and what the close raised (None if nothing).
    """
    app = create_celery(Settings(broker_url=url, broker_transport_options=options, queue="q"))
    writer = QueueWriter.for_app(app, "q", 60, timeout=2, connect_timeout=2)
    writer.enqueue([build_message(app, "q", f"RE{n}:completed", {"n": n}) for n in range(3)])
    writer.close()
    connection = kombu.Connection(url, transport=transport, transport_options=app.conf.broker_transport_options)
    channel = connection.default_channel
    other = connection.channel()
    held = [channel.basic_get("q"), channel.basic_get("q"), other.basic_get("q")]
    assert all(message is not None for message in held)
    channel.basic_consume("q", False, lambda message: None, "consumer")
    with pytest.raises(socket.timeout):
        connection.drain_events(timeout=0.3)  # the queue is empty: BRPOP waits
    assert channel._in_poll
    take_down()
    connection.collect(socket_timeout=2)
    try:
        connection.close()
    except Exception as error:  # what Celery's ignore_errors lets through stops the worker
        return held, error
    return held, None


def test_the_installed_kombu_still_fails_to_close_a_channel_after_its_connection(private_redis) -> None:
    """The defect kombu_transport works around; when this fails, kombu fixed it and the workaround can go."""
    url = f"{private_redis.url}/0"
    held, error = _hold_then_lose_the_broker(url, {}, private_redis.kill, transport=STOCK_REDIS_TRANSPORT)
    assert isinstance(error, AttributeError) and "hostname" in str(error)
    private_redis.start()
    with pytest.raises(AttributeError):
        held[0].ack()  # a task finishing after the reconnect could not acknowledge either


def test_a_channel_closed_after_its_connection_fails_only_with_connection_errors(private_redis) -> None:
    url = f"{private_redis.url}/0"
    assert isinstance(create_celery(Settings(broker_url=url)).connection_for_read().transport,
                      kombu_transport.Transport)
    held, error = _hold_then_lose_the_broker(url, {}, private_redis.kill)
    assert error is None
    private_redis.start()
    client = redis.Redis.from_url(url)
    # Nothing could be restored while Redis was away: every message is still recorded, none lost.
    assert client.hlen("unacked") == 3 and client.llen("q") == 0
    # A task that finishes after the reconnect acknowledges through the closed channel's pool.
    held[0].ack()
    assert client.hlen("unacked") == 2 and not client.hexists("unacked", held[0].delivery_tag)
    client.close()


def test_a_sentinel_channel_closed_after_a_failover_acknowledges_through_the_new_master(sentinel_setup) -> None:
    options = sentinel_setup.transport_options
    old = sentinel_setup.master
    held, error = _hold_then_lose_the_broker(sentinel_setup.url, options, old.kill)
    assert error is None
    sentinel_setup.wait_failover(old.port, timeout=60)
    new = redis.Redis(port=sentinel_setup.master.port)
    # Replication is asynchronous; the messages were taken long enough before the kill to be on the replica.
    assert new.hlen("unacked") == 3
    # Right after a promotion the sentinels may not all report the new master as up yet (redis-py
    # then says "No master found"): a task finishing then fails to acknowledge, and its message
    # comes back after the visibility timeout. A moment later the acknowledgement goes through.
    wait_for(lambda: _acknowledged(held[0]), timeout=30, what="the acknowledgement through the new master")
    assert new.hlen("unacked") == 2
    new.close()


def _acknowledged(message) -> bool:
    try:
        message.ack()
    except redis.ConnectionError:
        return False
    return True


def test_every_redis_url_scheme_reaches_the_patched_transports_even_after_a_sentinel_switch() -> None:
    create_celery(Settings())  # installs them
    assert kombu.Connection("redis://127.0.0.1:1/0").transport_cls == "redis"
    assert kombu.Connection("redis://127.0.0.1:1/0").get_transport_cls() is kombu_transport.Transport
    assert kombu.Connection("rediss://127.0.0.1:1/0").get_transport_cls() is kombu_transport.Transport
    connection = kombu.Connection("sentinel://127.0.0.1:1;sentinel://127.0.0.1:2",
                                  transport_options={"master_name": "m"})
    assert connection.get_transport_cls() is kombu_transport.SentinelTransport
    # kombu re-reads the scheme of each URL it fails over to.
    connection.switch("sentinel://127.0.0.1:2")
    assert connection.get_transport_cls() is kombu_transport.SentinelTransport
    assert kombu_transport.SentinelTransport.Channel.__mro__[1:3] == (
        kombu_transport._ClosedChannelGuard, kombu.transport.redis.SentinelChannel)
