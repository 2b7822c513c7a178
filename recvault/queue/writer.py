"""Put callback events on the Celery queue in Redis: deduplicated, atomically, in batches.

Why not `celery.send_task`: it does one round trip per message (about 2,100 messages/s
from a thread here) and cannot make "first time we see this (RecordingSid, status)" and
"enqueue it" one atomic step. If the two were separate, a crash between them would
either lose the event (marked seen, never queued) or queue it twice. So the message is
built by Celery's own protocol-2 builder (`app.amqp.as_task_v2`, run once per queue and
task to make a template: task_message.py), wrapped in kombu's Redis envelope, and pushed by
one Lua script that sets the dedup key and LPUSHes only if the key was new — a whole batch
in one script call.

The same script records the message in kombu's unacknowledged-message bookkeeping, as if a
worker had already taken it. kombu's Redis transport pops a message (BRPOP) and records it
there only afterwards, so a worker killed in between would lose it for good; recorded in
advance, it is handed out again after the visibility timeout like any unacknowledged
message. The worker that takes it rewrites the record, its acknowledgement removes it, and
a message left waiting in the queue longer than the visibility timeout is delivered twice,
which the idempotent archive absorbs. Everything that depends on kombu's internals (key
names, envelope, the script) lives in kombu_redis.py.

Redis replicates asynchronously: a master that dies right after a batch can take it along,
and a Sentinel failover then promotes a replica that never saw it. With `replicas` set (the
default with Sentinel), each batch ends with a write to a fence key and `WAIT replicas
timeout`, and `write()` says whether enough replicas acknowledged it in time. It also reports
where the batch sits in the master's replication history: the replication ID and offset
`INFO replication` gives right after the batch. Ingest keeps a batch no replica acknowledged
in its spool as well as on the master, and releases that copy only once a later `WAIT`
on the same history covers its offset (`confirm()`); a master restarted or replaced starts a
new history, so copies of the old one are published again, through the dedup script, which
queues only what the new master lacks. While copies are held, `refresh()` renews their dedup
keys, so a copy published again always meets its key however long it was held.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import socket
import time
import uuid
from datetime import datetime
from typing import Any, NamedTuple

import redis
from celery import Celery

from recvault.audit import ledger
from recvault.queue import kombu_redis
from recvault.queue.broker import broker_client
from recvault.queue.celery_factory import ARCHIVE_TASK
from recvault.queue.task_message import MessageTemplate, template_for

# The namespace makes task ids stable per (RecordingSid, status): logs and retries line up.
TASK_ID_NAMESPACE = uuid.UUID("6f3c1e52-61a4-4a8e-9d1c-5b0f3b8f2a10")

_ORIGIN = f"{os.getpid()}@{socket.gethostname()}"
# A dedup key's value: only its existence is read. A small integer is one of Redis's shared
# objects, so the key costs its name and its expiry alone (a timestamp here cost 56 bytes more).
SEEN = "1"


class NotReplicated(redis.RedisError):
    """Fewer replicas than required acknowledged a batch in time: a failover could lose it."""


class NotMaster(redis.RedisError):
    """The server the writer reached does not serve as a master."""


class Replication(NamedTuple):
    """Where a master's replication stands: its history, the offset it has reached, its online replicas.

    A master gets a new replication ID when it restarts and when a replica is promoted in its
    place, so an unchanged ID means the same server, running since, with every write it took.
    Offsets compare only within one ID.
    """

    history: str  # INFO replication's master_replid
    offset: int  # master_repl_offset
    online: int  # replicas in state "online"

    @classmethod
    def from_info(cls, info: dict[str, Any]) -> Replication:
        if info.get("role") != "master":
            raise NotMaster(f"the broker answered as {info.get('role')!r}, not as the master")
        online = sum(1 for key, value in info.items()
                     if key.startswith("slave") and isinstance(value, dict) and value.get("state") == "online")
        return cls(str(info["master_replid"]), int(info["master_repl_offset"]), online)


class Written(NamedTuple):
    """What became of one batch: enqueued or already seen, per message, and whether replicas hold it."""

    enqueued: list[bool]
    # True when enough replicas acknowledged the batch, or none are required.
    acknowledged: bool
    # The master's replication just after it took the batch; None when no replica is required.
    replication: Replication | None = None


class Outgoing(NamedTuple):
    """One event ready for the queue: its dedup key and its serialized kombu message.

    A named tuple rather than a frozen dataclass: one is built per callback, and a frozen
    dataclass's __init__ costs several times as much.
    """

    dedup_key: str
    message: str
    task_id: str
    delivery_tag: str = ""  # read back from the message when empty (spooled rows)
    # The accepted-callback ledger row (audit.ledger) for a callback; empty for other messages.
    ledger: str = ""


def _delivery_tag() -> str:
    # kombu uses uuid4 here; os.urandom per message costs a syscall on the hot path, and a
    # tag only has to be unique among unacknowledged messages (random is fork-safe).
    # Formatted by hand: uuid.UUID(...) with its checks costs 3 µs a message.
    bits = (random.getrandbits(128) & ~_VERSION_MASK) | _VERSION_4
    return _dashed(f"{bits:032x}")


def task_id_for(dedup_key: str) -> str:
    """str(uuid.uuid5(TASK_ID_NAMESPACE, dedup_key)), computed without the uuid module's 5 µs."""
    digest = hashlib.sha1(_NAMESPACE_BYTES + dedup_key.encode()).digest()[:16]
    bits = (int.from_bytes(digest) & ~_VERSION_MASK) | _VERSION_5
    return _dashed(f"{bits:032x}")


def _dashed(hex32: str) -> str:
    return f"{hex32[:8]}-{hex32[8:12]}-{hex32[12:16]}-{hex32[16:20]}-{hex32[20:]}"


# RFC 4122 bits: the version nibble (bits 76-79) and the variant (bits 62-63, "10").
_VERSION_MASK = (0xF << 76) | (0x3 << 62)
_VERSION_4 = (0x4 << 76) | (0x2 << 62)
_VERSION_5 = (0x5 << 76) | (0x2 << 62)
_NAMESPACE_BYTES = TASK_ID_NAMESPACE.bytes


def build_message(app: Celery, queue: str, dedup_key: str, payload: dict, *, task: str = ARCHIVE_TASK,
                  task_id: str | None = None, eta: datetime | None = None, retries: int = 0,
                  ledger: str = "") -> Outgoing:
    """A Celery protocol-2 task message in kombu's Redis envelope, JSON-serialized.

    `dedup_key` makes the publication happen once; a retry of a task keeps its task id and
    counts `retries`, and waits in its worker until `eta`, as Celery's own retry would.
    """
    task_id = task_id or task_id_for(dedup_key)
    tag = _delivery_tag()
    if eta is None and not retries:  # every callback: the template (task_message.py says why)
        template = message_template(app, queue, task)
        return Outgoing(dedup_key, template.render(task_id, f"({dedup_key!r},)", payload, tag), task_id, tag,
                        ledger)
    headers, properties, body, _ = app.amqp.as_task_v2(
        task_id,
        task,
        args=(payload,),
        kwargs={},
        ignore_result=True,
        eta=eta,
        retries=retries,
        # The default repr would copy every callback parameter into the headers.
        argsrepr=f"({dedup_key!r},)",
        kwargsrepr="{}",
        # Celery would look the host name up for every message.
        origin=_ORIGIN,
    )
    message = kombu_redis.envelope(body, headers, properties, routing_key=queue, delivery_tag=tag)
    return Outgoing(dedup_key, message, task_id, tag, ledger)


def message_template(app: Celery, queue: str, task: str = ARCHIVE_TASK) -> MessageTemplate:
    """The template build_message renders `task`'s messages on `queue` from; build it at start."""
    return template_for(app, queue, task, origin=_ORIGIN)


class QueueWriter:
    """Runs the enqueue-once script for batches of messages; blocking, so called off the loop."""

    def __init__(self, client: redis.Redis, keys: kombu_redis.RedisKeys, routing_key: str,
                 dedup_ttl: int, *, replicas: int = 0, replica_timeout_ms: int = 0) -> None:
        self._client = client
        self._keys = keys
        self._routing_key = json.dumps(routing_key)
        self._ttl = str(dedup_ttl)
        self._replicas = replicas
        self._replica_timeout_ms = replica_timeout_ms
        self._sha: str | None = None  # loaded on first use, so constructing never touches Redis
        # Replicas the master last said were online: with fewer than required, WAIT could only
        # time out, so batches skip it (and ingest keeps their copies) until enough are back.
        self._online = replicas

    @classmethod
    def for_app(cls, app: Celery, queue: str, dedup_ttl: int, *, timeout: float,
                connect_timeout: float, replicas: int = 0) -> QueueWriter:
        """A writer for `queue` of the broker `app` is configured with, keyed as its transport keys it."""
        options = app.conf.broker_transport_options or {}
        keys = kombu_redis.RedisKeys.for_queue(queue, options)
        # A failed batch goes to the spool at once; redis-py retrying would only add delay.
        client = broker_client(app.conf.broker_url, options, socket_timeout=timeout,
                               socket_connect_timeout=connect_timeout, fail_fast=True)
        # WAIT blocks the connection until replicas acknowledge: half the socket timeout leaves
        # the other half for the batch itself.
        return cls(client, keys, queue, dedup_ttl, replicas=replicas,
                   replica_timeout_ms=max(1, int(timeout * 1000 / 2)))

    @property
    def client(self) -> redis.Redis:
        """The Redis client of the broker, for the heartbeat and counters beside the queue."""
        return self._client

    @property
    def keys(self) -> kombu_redis.RedisKeys:
        return self._keys

    @property
    def replicas(self) -> int:
        """Replicas that must acknowledge a batch; 0: the master alone."""
        return self._replicas

    @property
    def dedup_ttl(self) -> int:
        return int(self._ttl)

    def publish(self, item: Outgoing) -> bool:
        """Enqueue one message unless its dedup key was seen; raises redis.RedisError if Redis fails."""
        return self.enqueue([item])[0]

    def enqueue(self, batch: list[Outgoing]) -> list[bool]:
        """Enqueue each message unless its dedup key was seen; True where it was enqueued.

        Raises NotReplicated when fewer replicas than required acknowledged the batch in time
        (it is on the master nonetheless).
        """
        written = self.write(batch)
        if not written.acknowledged:
            raise NotReplicated(f"fewer than {self._replicas} replica(s) acknowledged the batch "
                                f"within {self._replica_timeout_ms} ms")
        return written.enqueued

    def write(self, batch: list[Outgoing]) -> Written:
        """Enqueue each message unless its dedup key was seen, and say whether replicas hold the batch.

        Raises redis.RedisError when the master did not answer (the batch may or may not be on it).
        """
        if not batch:
            return Written([], True)
        if self._sha is None:
            self._sha = self._client.script_load(kombu_redis.ENQUEUE_BATCH)
        pending = repr(kombu_redis.pending_score(time.time()))
        keys: list[str] = []
        args: list[str] = []
        for item in batch:
            item_keys, item_args = self._enqueue_once_arguments(item, pending)
            keys += item_keys
            args += item_args
        # EVALSHA straight away: redis-py's Script objects ask SCRIPT EXISTS before each pipeline.
        pipe = self._client.pipeline(transaction=False)
        pipe.evalsha(self._sha, len(keys), *keys, str(len(item_keys)), str(len(item_args)), *args)
        waits = False
        if self._replicas:
            # Where the batch ends in the master's history, read on the same connection.
            pipe.info("replication")
            waits = self._online >= self._replicas
            if waits:
                # WAIT counts replicas holding this connection's last write; the fence makes that
                # write come after every earlier one, including a repeat that wrote nothing.
                pipe.incr(self._keys.fence)
                pipe.wait(self._replicas, self._replica_timeout_ms)
        try:
            results = pipe.execute()
        except redis.exceptions.NoScriptError:
            # The server restarted without its script cache: load it and run the batch again
            # (the script's dedup key makes the repeat harmless).
            self._sha = None
            return self.write(batch)
        enqueued = [bool(answer) for answer in results[0]]
        if not self._replicas:
            return Written(enqueued, True)
        replication = Replication.from_info(results[1])
        self._online = replication.online
        return Written(enqueued, waits and results[-1] >= self._replicas, replication)

    def replication(self) -> Replication:
        """The master's replication history, offset and online replicas, as it answers now."""
        replication = Replication.from_info(self._client.info("replication"))
        self._online = replication.online
        return replication

    def confirm(self) -> tuple[Replication, bool]:
        """Whether enough replicas hold everything the master took up to the offset returned.

        Asks the master first; with fewer replicas online than required it does not wait.
        """
        replication = self.replication()
        if not self._replicas:
            return replication, True
        if replication.online < self._replicas:
            return replication, False
        pipe = self._client.pipeline(transaction=False)
        pipe.info("replication")  # before the fence: WAIT covers everything up to this offset
        pipe.incr(self._keys.fence)
        pipe.wait(self._replicas, self._replica_timeout_ms)
        info, _, acknowledged = pipe.execute()
        replication = Replication.from_info(info)
        self._online = replication.online
        return replication, acknowledged >= self._replicas

    def refresh(self, dedup_keys: list[str]) -> int:
        """Give these events' dedup keys a whole window again; how many the master holds.

        For events whose copies ingest still holds: published again later, each must meet its
        key, else it would be queued a second time. EXPIRE, never SET: a key the master lacks
        is not created, since a master that lacks it may lack the event too.
        """
        if not dedup_keys:
            return 0
        pipe = self._client.pipeline(transaction=False)
        for key in dedup_keys:
            pipe.expire(self._keys.dedup_prefix + key, int(self._ttl))
        return sum(bool(answer) for answer in pipe.execute())

    def _enqueue_once_arguments(self, item: Outgoing, pending: str) -> tuple[list[str], list[str]]:
        """One message's KEYS and ARGV for kombu_redis.ENQUEUE_ONCE."""
        keys = self._keys
        tag = item.delivery_tag or json.loads(item.message)["properties"]["delivery_tag"]
        return ([keys.dedup_prefix + item.dedup_key, keys.queue, keys.unacked, keys.unacked_index,
                 keys.recvault(ledger.STREAM)],
                [self._ttl, item.message, SEEN, tag, pending, self._routing_key, item.ledger])

    def ping(self) -> bool:
        try:
            return bool(self._client.ping())
        except redis.RedisError:
            return False

    def close(self) -> None:
        self._client.close()
