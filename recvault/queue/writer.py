"""Put callback events on the Celery queue in Redis: deduplicated, atomically, in batches.

Why not `celery.send_task`: it does one round trip per message (about 2,100 messages/s
from a thread here) and cannot make "first time we see this (RecordingSid, status)" and
"enqueue it" one atomic step. If the two were separate, a crash between them would
either lose the event (marked seen, never queued) or queue it twice. So the message is
built by Celery's own protocol-2 builder (`app.amqp.as_task_v2`), wrapped in kombu's
Redis envelope, and pushed by one Lua script that sets the dedup key and LPUSHes only if
the key was new — a whole batch per pipeline round trip.

The same script records the message in kombu's unacknowledged-message bookkeeping, as if a
worker had already taken it. kombu's Redis transport pops a message (BRPOP) and records it
there only afterwards, so a worker killed in between would lose it for good; recorded in
advance, it is handed out again after the visibility timeout like any unacknowledged
message. The worker that takes it rewrites the record, its acknowledgement removes it, and
a message left waiting in the queue longer than the visibility timeout is delivered twice,
which the idempotent archive absorbs. Everything that depends on kombu's internals (key
names, envelope, the script) lives in kombu_redis.py.
"""

from __future__ import annotations

import json
import os
import random
import socket
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime

import redis
from celery import Celery

from recvault.queue import kombu_redis
from recvault.queue.app import ARCHIVE_TASK

# The namespace makes task ids stable per (RecordingSid, status): logs and retries line up.
TASK_ID_NAMESPACE = uuid.UUID("6f3c1e52-61a4-4a8e-9d1c-5b0f3b8f2a10")

_ORIGIN = f"{os.getpid()}@{socket.gethostname()}"


@dataclass(frozen=True)
class Outgoing:
    """One event ready for the queue: its dedup key and its serialized kombu message."""

    dedup_key: str
    message: str
    task_id: str
    delivery_tag: str = ""  # read back from the message when empty (spooled rows)


def _delivery_tag() -> str:
    # kombu uses uuid4 here; os.urandom per message costs a syscall on the hot path, and a
    # tag only has to be unique among unacknowledged messages (random is fork-safe).
    return str(uuid.UUID(int=random.getrandbits(128), version=4))


def build_message(app: Celery, queue: str, dedup_key: str, payload: dict, *, task: str = ARCHIVE_TASK,
                  task_id: str | None = None, eta: datetime | None = None, retries: int = 0) -> Outgoing:
    """A Celery protocol-2 task message in kombu's Redis envelope, JSON-serialized.

    `dedup_key` makes the publication happen once; a retry of a task keeps its task id and
    counts `retries`, and waits in its worker until `eta`, as Celery's own retry would.
    """
    task_id = task_id or str(uuid.uuid5(TASK_ID_NAMESPACE, dedup_key))
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
    tag = _delivery_tag()
    message = kombu_redis.envelope(body, headers, properties, routing_key=queue, delivery_tag=tag)
    return Outgoing(dedup_key, message, task_id, tag)


class QueueWriter:
    """Runs the enqueue-once script for batches of messages; blocking, so called off the loop."""

    def __init__(self, client: redis.Redis, keys: kombu_redis.RedisKeys, routing_key: str,
                 dedup_ttl: int) -> None:
        self._client = client
        self._keys = keys
        self._routing_key = json.dumps(routing_key)
        self._ttl = str(dedup_ttl)
        self._sha: str | None = None  # loaded on first use, so constructing never touches Redis

    @classmethod
    def for_app(cls, app: Celery, queue: str, dedup_ttl: int, *, timeout: float,
                connect_timeout: float) -> QueueWriter:
        """A writer for `queue` of the broker `app` is configured with, keyed as its transport keys it."""
        keys = kombu_redis.RedisKeys.for_queue(queue, app.conf.broker_transport_options or {})
        client = redis.Redis.from_url(
            app.conf.broker_url,
            socket_timeout=timeout,
            socket_connect_timeout=connect_timeout,
            # A failed batch goes to the spool at once; redis-py retrying would only add delay.
            retry=None,
        )
        return cls(client, keys, queue, dedup_ttl)

    @property
    def client(self) -> redis.Redis:
        """The Redis client of the broker, for the keeper and counters beside the queue."""
        return self._client

    @property
    def keys(self) -> kombu_redis.RedisKeys:
        return self._keys

    def publish(self, item: Outgoing) -> bool:
        """Enqueue one message unless its dedup key was seen; raises redis.RedisError if Redis fails."""
        return self.enqueue([item])[0]

    def enqueue(self, batch: list[Outgoing]) -> list[bool]:
        """Enqueue each message unless its dedup key was seen; True where it was enqueued."""
        if self._sha is None:
            self._sha = self._client.script_load(kombu_redis.ENQUEUE_ONCE)
        stamp = datetime.now(UTC).isoformat()
        pending = repr(kombu_redis.pending_score(time.time()))
        keys = self._keys
        # EVALSHA straight away: redis-py's Script objects ask SCRIPT EXISTS before each pipeline.
        pipe = self._client.pipeline(transaction=False)
        for item in batch:
            tag = item.delivery_tag or json.loads(item.message)["properties"]["delivery_tag"]
            pipe.evalsha(self._sha, 4, keys.dedup_prefix + item.dedup_key, keys.queue, keys.unacked,
                         keys.unacked_index, self._ttl, item.message, stamp, tag, pending, self._routing_key)
        try:
            results = pipe.execute()
        except redis.exceptions.NoScriptError:
            # The server restarted without its script cache: load it and run the batch again
            # (the script's dedup key makes the repeat harmless).
            self._sha = None
            return self.enqueue(batch)
        return [bool(result) for result in results]

    def ping(self) -> bool:
        try:
            return bool(self._client.ping())
        except redis.RedisError:
            return False

    def close(self) -> None:
        self._client.close()
