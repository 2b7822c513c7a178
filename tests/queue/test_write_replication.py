"""The writer's word on replication: whether replicas hold a batch, where it sits in the master's
history, a later WAIT that covers it, and dedup keys renewed for copies held meanwhile."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from recvault.queue.celery_factory import create_celery
from recvault.queue.writer import NotReplicated, QueueWriter, build_message
from recvault.settings import Settings
from tests.queue.replicas import MasterAndReplica, master_and_replica

QUEUE = "q"


@pytest.fixture
def pair(tmp_path: Path) -> Iterator[MasterAndReplica]:
    with master_and_replica(tmp_path) as started:
        yield started


@pytest.fixture
def writer(pair: MasterAndReplica) -> Iterator[QueueWriter]:
    app = create_celery(Settings(broker_url=pair.url, broker_wait_replicas=1, queue=QUEUE))
    # WAIT waits half the socket timeout: 2 s here, far from how long a batch takes when it does not wait.
    queue_writer = QueueWriter.for_app(app, QUEUE, 60, timeout=4, connect_timeout=1, replicas=1)
    yield queue_writer
    queue_writer.close()


def message(n: int):
    app = create_celery(Settings(queue=QUEUE))
    return build_message(app, QUEUE, f"RE{n}:completed", {"n": n})


def test_a_batch_a_replica_holds_is_acknowledged_with_its_place_in_the_masters_history(
        pair: MasterAndReplica, writer: QueueWriter) -> None:
    written = writer.write([message(1), message(2)])
    assert written.enqueued == [True, True] and written.acknowledged
    with pair.client() as master, pair.client(pair.replica) as replica:
        info = master.info("replication")
        assert written.replication is not None
        assert written.replication.history == info["master_replid"]
        assert 0 < written.replication.offset <= info["master_repl_offset"]
        assert written.replication.online == 1
        assert replica.llen(QUEUE) == 2  # WAIT returned: the replica holds the batch


def test_with_no_replica_online_a_batch_is_on_the_master_unacknowledged_and_soon_without_waiting(
        pair: MasterAndReplica, writer: QueueWriter) -> None:
    writer.write([message(0)])
    pair.lose_replica()
    started = time.monotonic()
    first = writer.write([message(1)])
    assert not first.acknowledged and first.enqueued == [True]  # on the master all the same
    assert time.monotonic() - started < 3  # the WAIT timeout, and no more
    assert first.replication is not None and first.replication.online == 0
    # The master said no replica is online: the next batches do not wait for one in vain.
    started = time.monotonic()
    second = writer.write([message(2), message(1)])
    assert time.monotonic() - started < 1
    assert second.enqueued == [True, False] and not second.acknowledged
    assert second.replication is not None and second.replication.history == first.replication.history
    assert second.replication.offset > first.replication.offset
    with pytest.raises(NotReplicated):
        writer.enqueue([message(3)])
    with pair.client() as master:
        assert master.llen(QUEUE) == 4


def test_once_the_replica_is_back_a_confirmation_covers_every_earlier_batch(
        pair: MasterAndReplica, writer: QueueWriter) -> None:
    pair.lose_replica()
    held = writer.write([message(1)])
    assert not held.acknowledged and held.replication is not None
    replication, acknowledged = writer.confirm()
    assert not acknowledged and replication.online == 0  # no replica: answered without a WAIT
    pair.bring_back_replica()
    replication, acknowledged = writer.confirm()
    assert acknowledged and replication.history == held.replication.history
    assert replication.offset >= held.replication.offset
    with pair.client(pair.replica) as replica:
        assert replica.llen(QUEUE) == 1
    # And batches wait for the replica again.
    assert writer.write([message(2)]).acknowledged


def test_a_restarted_master_starts_a_new_history(pair: MasterAndReplica, writer: QueueWriter) -> None:
    before = writer.replication()
    pair.master.stop()
    pair.master.start()
    after = writer.replication() if _reconnected(writer) else None
    assert after is not None and after.history != before.history


def test_renewing_dedup_keys_gives_them_a_whole_window_and_creates_none(
        pair: MasterAndReplica, writer: QueueWriter) -> None:
    writer.write([message(1)])
    with pair.client() as master:
        master.expire("recvault:seen:RE1:completed", 5)
        assert writer.refresh(["RE1:completed", "RE9:completed"]) == 1
        assert 55 <= master.ttl("recvault:seen:RE1:completed") <= 60
        assert not master.exists("recvault:seen:RE9:completed")  # a master that lacks it may lack the event


def _reconnected(writer: QueueWriter) -> bool:
    """The writer's pooled connection broke with the restart: the first call fails, the next reconnects."""
    for _ in range(20):
        try:
            writer.replication()
            return True
        except Exception:
            time.sleep(0.1)
    return False
