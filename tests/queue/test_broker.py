"""Every broker URL form Celery accepts for Redis reaches the same server from ingest, the DLQ and kombu."""

from __future__ import annotations

import json
import ssl
import time
from pathlib import Path

import pytest
import redis

from recvault.errors import ConfigurationError
from recvault.launch.services import free_port
from recvault.queue.broker import BrokerAddress, broker_client, celery_broker_url, check_tls
from recvault.queue.celery_factory import create_celery
from recvault.queue.writer import NotReplicated, QueueWriter, build_message
from recvault.settings import Settings
from recvault.workers.dead_letters import DeadLetters
from tests.fixtures.sentinel import SentinelSetup, TlsSentinelSetup
from tests.fixtures.tls_redis import TlsRedisServer, make_ca
from tests.fixtures.worker import wait_for

SENTINELS = "sentinel://:master-pw@10.1.0.1:26379/2;sentinel://10.1.0.2;sentinel://10.1.0.3:26380"


def test_each_url_form_names_its_address() -> None:
    plain = BrokerAddress.parse("redis://user:p%40ss@cache.internal:6380/3", {})
    assert (plain.hosts, plain.db, plain.username, plain.password, plain.tls) == (
        (("cache.internal", 6380),), 3, "user", "p@ss", {})
    tls = BrokerAddress.parse("rediss://:token@master.cache.amazonaws.com?ssl_cert_reqs=none&ssl_ca_certs=/ca.pem", {})
    assert tls.hosts == (("master.cache.amazonaws.com", 6379),)
    assert tls.tls == {"ssl": True, "ssl_cert_reqs": ssl.CERT_NONE, "ssl_ca_certs": "/ca.pem"}
    # Without ssl_cert_reqs the certificate is verified, as redis-py does by default.
    assert BrokerAddress.parse("rediss://host", {}).tls == {"ssl": True, "ssl_cert_reqs": ssl.CERT_REQUIRED}
    sentinel = BrokerAddress.parse(SENTINELS, {"master_name": "mymaster", "sentinel_kwargs": {"password": "s"}})
    assert sentinel.hosts == (("10.1.0.1", 26379), ("10.1.0.2", 26379), ("10.1.0.3", 26380))
    assert (sentinel.master_name, sentinel.db, sentinel.password, sentinel.tls) == ("mymaster", 2, "master-pw", {})
    assert sentinel.sentinel_kwargs == {"password": "s"}


@pytest.mark.parametrize(("url", "options", "named"), [
    (SENTINELS, {}, "sentinel:// needs the master's name"),
    ("sentinel://10.1.0.1:26379;redis://10.1.0.2", {"master_name": "m"}, "must be a sentinel:// URL"),
    ("redis://a:6379;redis://b:6379", {}, "only understood with sentinel://"),
    ("redis://cache:63790000", {}, "not a number from 1 to 65535"),
    ("redis://cache/zero", {}, "the database must be a number"),
    ("redis://cache?ssl_cert_reqs=required", {}, "TLS parameters need a rediss:// URL"),
    ("rediss://cache?ssl_cert_reqs=maybe", {}, "ssl_cert_reqs must be required, optional or none"),
    ("rediss://cache?visibility_timeout=5", {}, "unknown URL parameter 'visibility_timeout'"),
    ("amqp://guest@rabbit//", {}, "must be a redis://, rediss:// or sentinel://"),
])
def test_a_url_recvault_cannot_use_is_one_line_naming_the_variable(url: str, options: dict, named: str) -> None:
    with pytest.raises(ConfigurationError) as caught:
        BrokerAddress.parse(url, options)
    message = str(caught.value)
    assert message.startswith("RECVAULT_BROKER_URL: ") and named in message and "\n" not in message


@pytest.mark.parametrize(("url", "options", "named"), [
    (SENTINELS, {"master_name": "m", "sentinel_kwargs": {"ssl_ca_certs": "/ca.pem"}},
     'RECVAULT_BROKER_TRANSPORT_OPTIONS: sentinel_kwargs has ssl_ca_certs but not "ssl": true'),
    (SENTINELS, {"master_name": "m", "sentinel_kwargs": {"ssl": True, "ssl_cert_reqs": "CERT_REQUIRED"}},
     "RECVAULT_BROKER_TRANSPORT_OPTIONS: sentinel_kwargs' ssl_cert_reqs must be none, optional, required"),
    ("sentinel://a:26379;sentinel://b:26379?ssl_ca_certs=/ca.pem", {"master_name": "m"},
     "RECVAULT_BROKER_URL: the TLS query of a sentinel:// URL other than the first is ignored"),
])
def test_tls_arguments_kombu_or_redis_py_would_ignore_are_refused(url: str, options: dict, named: str) -> None:
    with pytest.raises(ConfigurationError) as caught:
        BrokerAddress.parse(url, options)
    assert str(caught.value).startswith(named) and "\n" not in str(caught.value)


def test_a_query_repeated_on_every_sentinel_url_is_the_first_ones() -> None:
    same = "sentinel://a:26379?ssl_ca_certs=/ca.pem;sentinel://b:26379?ssl_ca_certs=/ca.pem"
    assert BrokerAddress.parse(same, {"master_name": "m"}).tls["ssl_ca_certs"] == "/ca.pem"


def test_sentinel_connections_keep_the_clients_timeouts_beside_sentinel_kwargs() -> None:
    # redis-py gives sentinel connections no timeout at all once sentinel_kwargs is set.
    options = {"master_name": "m", "sentinel_kwargs": {"ssl": True, "password": "s"}}
    client = BrokerAddress.parse(SENTINELS, options).client(socket_timeout=1.5, socket_connect_timeout=0.5)
    sentinel = client.connection_pool.sentinel_manager.sentinels[0]
    kwargs = sentinel.connection_pool.connection_kwargs
    assert (kwargs["socket_timeout"], kwargs["socket_connect_timeout"], kwargs["password"]) == (1.5, 0.5, "s")
    own = {"master_name": "m", "sentinel_kwargs": {"socket_timeout": 9}}
    client = BrokerAddress.parse(SENTINELS, own).client(socket_timeout=1.5, socket_connect_timeout=0.5)
    assert client.connection_pool.sentinel_manager.sentinels[0].connection_pool.connection_kwargs[
        "socket_timeout"] == 9


def test_the_same_refusal_stops_the_celery_app_at_start() -> None:
    with pytest.raises(ConfigurationError, match="RECVAULT_BROKER_URL: sentinel:// needs the master's name"):
        create_celery(Settings(broker_url=SENTINELS))


def test_celery_is_told_to_verify_what_recvault_verifies() -> None:
    assert celery_broker_url("rediss://h:6379/0") == "rediss://h:6379/0?ssl_cert_reqs=required"
    assert celery_broker_url("rediss://h/0?ssl_cert_reqs=none") == "rediss://h/0?ssl_cert_reqs=none"
    assert celery_broker_url("redis://h/0") == "redis://h/0"
    app = create_celery(Settings(broker_url="rediss://h:6379/0"))
    with app.connection_for_write() as connection:
        assert connection.ssl == {"ssl_cert_reqs": ssl.CERT_REQUIRED}


def test_tls_broker_carries_ingest_messages_to_kombu(tls_redis: TlsRedisServer) -> None:
    url = f"{tls_redis.url}/0?ssl_ca_certs={tls_redis.certificates.ca}"
    app = create_celery(Settings(broker_url=url, queue="q"))
    writer = QueueWriter.for_app(app, "q", 60, timeout=2, connect_timeout=2)
    message = build_message(app, "q", "RE1:completed", {"n": 1})
    assert writer.enqueue([message]) == [True]
    with app.connection_for_read() as connection:
        taken = connection.default_channel.basic_get("q")
        assert taken is not None and taken.headers["id"] == message.task_id
        taken.ack()
    letters = DeadLetters.connect(url)
    letters.add("RE1:completed", "t", {}, reason="r", error="E", attempts=1)
    assert [letter.id for letter in letters.list()] == ["RE1:completed"]
    letters.close()
    writer.close()


def test_tls_without_the_servers_ca_is_refused_by_ingest_and_workers(tls_redis: TlsRedisServer) -> None:
    app = create_celery(Settings(broker_url=f"{tls_redis.url}/0", queue="q"))
    writer = QueueWriter.for_app(app, "q", 60, timeout=2, connect_timeout=2)
    with pytest.raises(redis.ConnectionError, match="CERTIFICATE_VERIFY_FAILED"):
        writer.enqueue([build_message(app, "q", "RE1:completed", {"n": 1})])
    with app.connection_for_read() as connection, pytest.raises(Exception, match="CERTIFICATE_VERIFY_FAILED"):
        connection.ensure_connection(max_retries=1)
    writer.close()


def refused(url: str, options: dict | None = None) -> str:
    """check_tls's one line for `url`, failing the test when it passes; within a few seconds."""
    started = time.monotonic()
    with pytest.raises(ConfigurationError) as caught:
        check_tls(url, options or {}, socket_timeout=2, socket_connect_timeout=2)
    assert time.monotonic() - started < 10
    message = str(caught.value)
    assert "\n" not in message
    return message


def test_check_tls_refuses_a_ca_that_did_not_sign_the_brokers_certificate(tls_redis: TlsRedisServer,
                                                                         tmp_path: Path) -> None:
    right = f"{tls_redis.url}/0?ssl_ca_certs={tls_redis.certificates.ca}"
    check_tls(right, {}, socket_timeout=2, socket_connect_timeout=2)
    wrong, _ = make_ca(tmp_path / "other-ca")
    message = refused(f"{tls_redis.url}/0?ssl_ca_certs={wrong}")
    assert message.startswith(f"RECVAULT_BROKER_URL: TLS with the broker 127.0.0.1:{tls_redis.port} failed: "
                              "its certificate did not verify (")
    assert message.endswith(f"with ssl_ca_certs={wrong}")
    # Without ssl_ca_certs the system's CAs are asked, and none of them signed a test certificate.
    assert refused(f"{tls_redis.url}/0").endswith("with the system's CA certificates (no ssl_ca_certs)")
    # A CA file that is not there is refused before any connection.
    assert refused(f"{tls_redis.url}/0?ssl_ca_certs={tmp_path / 'missing.pem'}") == (
        f"RECVAULT_BROKER_URL: ssl_ca_certs names {tmp_path / 'missing.pem'}, which is not a file this process "
        "can read")
    # Verification turned off by the URL: nothing to refuse.
    check_tls(f"{tls_redis.url}/0?ssl_ca_certs={wrong}&ssl_cert_reqs=none", {}, socket_timeout=2,
              socket_connect_timeout=2)


def test_check_tls_lets_a_broker_that_is_down_or_without_tls_pass() -> None:
    closed = free_port()
    started = time.monotonic()
    # Down: ingest spools and workers retry until it is back, as without TLS.
    check_tls(f"rediss://127.0.0.1:{closed}/0", {}, socket_timeout=2, socket_connect_timeout=2)
    # No TLS asked for: no connection at all.
    check_tls(f"redis://127.0.0.1:{closed}/0", {}, socket_timeout=2, socket_connect_timeout=2)
    check_tls(f"sentinel://127.0.0.1:{closed}", {"master_name": "m"}, socket_timeout=2, socket_connect_timeout=2)
    check_tls(f"sentinel://127.0.0.1:{closed}?ssl_ca_certs={__file__}", {"master_name": "m"}, socket_timeout=2,
              socket_connect_timeout=2)
    assert time.monotonic() - started < 5


def test_tls_sentinels_and_master_carry_ingest_messages_to_kombu(tls_sentinel_setup: TlsSentinelSetup,
                                                                 tmp_path: Path) -> None:
    setup = tls_sentinel_setup
    settings = Settings(broker_url=setup.url, broker_transport_options=setup.transport_options, queue="q")
    app = create_celery(settings)
    writer = QueueWriter.for_app(app, "q", 60, timeout=2, connect_timeout=2, replicas=settings.enqueue_replicas)
    message = build_message(app, "q", "RE1:completed", {"n": 1})
    assert writer.enqueue([message]) == [True]  # WAIT included: the replica's link is TLS too
    with app.connection_for_read() as connection:
        taken = connection.default_channel.basic_get("q")
        assert taken is not None and taken.headers["id"] == message.task_id
        taken.ack()
    writer.close()
    check_tls(setup.url, setup.transport_options, socket_timeout=2, socket_connect_timeout=2)
    wrong, _ = make_ca(tmp_path / "other-ca")
    # The sentinels' TLS comes from sentinel_kwargs, the master's from the first URL's query.
    sentinels = refused(setup.url, {**setup.transport_options, "sentinel_kwargs": setup.sentinel_kwargs(wrong)})
    assert sentinels.startswith("RECVAULT_BROKER_TRANSPORT_OPTIONS: TLS with sentinel 127.0.0.1:")
    assert sentinels.endswith(f"with sentinel_kwargs' ssl_ca_certs={wrong}")
    master = refused(setup.url.replace(str(setup.tls.ca), str(wrong)), setup.transport_options)
    assert master.startswith(f"RECVAULT_BROKER_URL: TLS with the master 127.0.0.1:{setup.master.port} "
                             "(as the sentinels name it) failed: its certificate did not verify")


@pytest.mark.system  # a real failover: beside the Sentinel scenario
def test_sentinel_broker_follows_a_failover_and_waits_for_a_replica(sentinel_setup: SentinelSetup) -> None:
    settings = Settings(broker_url=sentinel_setup.url, broker_transport_options=sentinel_setup.transport_options,
                        queue="q")
    assert settings.enqueue_replicas == 1
    app = create_celery(settings)
    writer = QueueWriter.for_app(app, "q", 60, timeout=1, connect_timeout=1, replicas=settings.enqueue_replicas)
    first = build_message(app, "q", "RE1:completed", {"n": 1})
    assert writer.enqueue([first]) == [True]
    old = sentinel_setup.master
    replica = redis.Redis(port=sentinel_setup.replica_of(old).port)
    assert replica.llen("q") == 1  # WAIT returned: the replica holds the batch already

    old.kill()
    sentinel_setup.wait_failover(old.port, timeout=30)
    # The promoted replica has nobody to replicate to: the writer says so instead of answering.
    second = build_message(app, "q", "RE2:completed", {"n": 2})

    def refused_for_want_of_a_replica() -> bool:
        try:
            writer.enqueue([second])
        except NotReplicated:
            return True
        except redis.ConnectionError:
            return False  # the connection to the old master breaks first
        raise AssertionError("a batch was confirmed with no replica to hold it")

    wait_for(refused_for_want_of_a_replica, timeout=10, what="the writer to reach the new master")
    # kombu, configured the same way, finds the new master and the message written before the failover.
    with app.connection_for_read() as connection:
        taken = connection.default_channel.basic_get("q")
        assert taken is not None and taken.headers["id"] == first.task_id
        taken.ack()
    client = broker_client(settings.broker_url, settings.broker_transport_options, socket_timeout=1,
                           socket_connect_timeout=1)
    assert client.info("server")["tcp_port"] == replica.info("server")["tcp_port"]
    assert [json.loads(raw)["headers"]["id"] for raw in client.lrange("q", 0, -1)] == [second.task_id]
    client.close()
    replica.close()
    writer.close()
