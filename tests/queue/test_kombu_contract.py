"""The messages ingest writes are the messages Celery itself would write."""

from __future__ import annotations

import json
import tomllib
from importlib.metadata import version
from pathlib import Path

import pytest
import redis
from packaging.requirements import Requirement

from recvault.errors import ConfigurationError
from recvault.queue.celery_factory import ARCHIVE_TASK, create_celery
from recvault.queue.writer import QueueWriter, build_message
from recvault.settings import Settings

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
