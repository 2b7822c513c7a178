"""How much work waits in the broker: messages on the queue, and messages workers hold."""

from __future__ import annotations

from dataclasses import dataclass

import redis

from recvault.queue.kombu_redis import PENDING_OFFSET, RedisKeys


@dataclass(frozen=True)
class QueueDepth:
    """Messages waiting on the queue, and messages taken by a worker and not yet acknowledged."""

    waiting: int
    held: int


def queue_depth(client: redis.Redis, keys: RedisKeys) -> QueueDepth:
    """Read both in one round trip; held excludes recvault's pending records (score ≥ PENDING_OFFSET)."""
    pipe = client.pipeline(transaction=False)
    pipe.llen(keys.queue)
    # kombu scores a taken message with the time it was taken (or its heartbeat's last beat);
    # messages still on the queue carry recvault's pending score instead.
    pipe.zcount(keys.unacked_index, "-inf", f"({PENDING_OFFSET}")
    waiting, held = pipe.execute()
    return QueueDepth(int(waiting), int(held))
