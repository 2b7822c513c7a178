"""The dead-letter store: events that exhausted their retries or failed for good.

Redis has no dead-letter queue, so recvault keeps one: a hash in the broker's Redis
(persisted with AOF in production), one entry per event, listable and replayable with
`recvault dlq list|show|replay|drop`. Replaying re-publishes first and removes second, so
a crash in between can only replay twice, which the idempotent archive absorbs.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime

import redis

DLQ_KEY = "recvault:dlq"


@dataclass(frozen=True)
class DeadLetter:
    """One failed event, with why it failed."""

    id: str
    task: str
    # The message body as delivered: normally a dict, but an unparseable one is kept as it came.
    payload: object
    reason: str
    error: str
    attempts: int
    failed_at: str


class DeadLetters:
    """Durable, listable, replayable failures."""

    def __init__(self, client: redis.Redis) -> None:
        self._client = client

    @classmethod
    def connect(cls, url: str, *, timeout: float = 5.0) -> DeadLetters:
        return cls(redis.Redis.from_url(url, socket_timeout=timeout, socket_connect_timeout=timeout))

    def add(self, id: str, task: str, payload: object, *, reason: str, error: str, attempts: int) -> DeadLetter:
        letter = DeadLetter(id, task, payload, reason, error, attempts,
                            datetime.now(UTC).isoformat())
        self._client.hset(DLQ_KEY, id, json.dumps(asdict(letter)))
        return letter

    def list(self) -> list[DeadLetter]:
        letters = [DeadLetter(**json.loads(raw)) for raw in self._client.hvals(DLQ_KEY)]
        return sorted(letters, key=lambda letter: letter.failed_at)

    def get(self, id: str) -> DeadLetter | None:
        raw = self._client.hget(DLQ_KEY, id)
        return DeadLetter(**json.loads(raw)) if raw else None

    def remove(self, id: str) -> bool:
        return bool(self._client.hdel(DLQ_KEY, id))

    def replay(self, letter: DeadLetter, publish: Callable[[str, object], object]) -> None:
        """Hand the event back to the workers, then forget the failure."""
        publish(letter.task, letter.payload)
        self.remove(letter.id)

    def close(self) -> None:
        self._client.close()
