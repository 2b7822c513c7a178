"""The dead-letter store: events that exhausted their retries or failed for good.

Redis has no dead-letter queue, so recvault keeps one, twice:

* in S3 beside the archive, under the policy's default retention: one create-only object
  per letter (`dead-letters/<id>/<time>.json`) and one per resolution (`…-resolved.json`,
  naming the letter it resolves). This copy survives a Redis that restarts without
  persistence; objects are never deleted, so the store is also the history of failures.
* in a Redis hash (`recvault:dlq`, id → letter), the fast index that `recvault dlq` reads
  first.

Listing merges both. Replaying re-publishes first and resolves second, so a crash in
between can only replay twice, which the idempotent archive absorbs; resolving touches only
the letter that was replayed, never a newer one written under the same id meanwhile. A letter
about a recording erased since is not replayed: the refusal is an entry in its chain, and the
letter stays until it is dropped.
"""

from __future__ import annotations

import builtins
import json
import logging
import re
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any

import redis

from recvault.audit.write import write_audit
from recvault.compliance.tombstones import refuse_if_erased
from recvault.errors import RecvaultError
from recvault.layout import DEAD_LETTERS, DLQ_KEY, letter_recording_sid
from recvault.queue.broker import broker_client
from recvault.storage.base import ObjectStore, Retention

log = logging.getLogger("recvault.worker")

S3_FOLDER = DEAD_LETTERS
# Deletes the hash entry only while it still holds the letter that was resolved (same
# failed_at), never a newer failure of the same event written meanwhile.
_REMOVE_IF_SAME = """
local current = redis.call('HGET', KEYS[1], ARGV[1])
if current and cjson.decode(current)['failed_at'] == ARGV[2] then
  return redis.call('HDEL', KEYS[1], ARGV[1])
end
return 0
"""
_UNSAFE = re.compile(r"[^A-Za-z0-9:_.-]")


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

    def json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)


class DeadLetters:
    """Durable, listable, replayable failures."""

    def __init__(self, client: redis.Redis, store: ObjectStore | None = None, *, prefix: str = "",
                 retention: Retention | None = None) -> None:
        self._client = client
        self._store = store
        self._folder = prefix + S3_FOLDER
        self._prefix = prefix
        self._retention = retention
        self._remove_if_same = client.register_script(_REMOVE_IF_SAME)
        # Why the S3 copy could not be read by the last list(), if it could not.
        self.s3_error: str | None = None

    @classmethod
    def connect(cls, url: str, transport_options: Mapping[str, Any] | None = None, *, timeout: float = 5.0,
                store: ObjectStore | None = None, prefix: str = "", retention: Retention | None = None) -> DeadLetters:
        """Dead letters on the broker `url` names (redis, rediss or Sentinel's current master)."""
        client = broker_client(url, transport_options or {}, socket_timeout=timeout, socket_connect_timeout=timeout)
        return cls(client, store, prefix=prefix, retention=retention)

    # --- writing ------------------------------------------------------------------
    def add(self, id: str, task: str, payload: object, *, reason: str, error: str, attempts: int) -> DeadLetter:
        """Record a failure in S3 (when it answers) and in Redis; RedisError if Redis cannot take it."""
        letter = DeadLetter(id, task, payload, reason, error, attempts, datetime.now(UTC).isoformat())
        self._put(self._letter_key(letter), letter.json())
        self._client.hset(DLQ_KEY, id, letter.json())
        self._audit(letter, "dead-lettered", {"task": task, "reason": reason, "error": error, "attempts": attempts})
        return letter

    def resolve(self, letter: DeadLetter, how: str) -> bool:
        """Mark this very letter replayed or dropped; a newer one under the same id stays."""
        record = json.dumps({"id": letter.id, "resolves": letter.failed_at, "how": how,
                             "at": datetime.now(UTC).isoformat()})
        self._put(self._letter_key(letter, suffix="-resolved"), record)
        self._audit(letter, f"dead-letter-{how}", {"failed_at": letter.failed_at})
        return bool(self._remove_if_same(keys=[DLQ_KEY], args=[letter.id, letter.failed_at]))

    def replay(self, letter: DeadLetter, publish: Callable[[str, object], object]) -> str | None:
        """Hand the event back to the workers, then resolve this letter; None when done.

        A letter about an erased recording is refused instead: its tombstone key is returned,
        and nothing is published or resolved.
        """
        tombstone = self._erased(letter)
        if tombstone is not None:
            return tombstone
        publish(letter.task, letter.payload)
        self.resolve(letter, "replayed")
        return None

    def _erased(self, letter: DeadLetter) -> str | None:
        """The tombstone of the recording the letter is about, its refusal recorded; None to replay."""
        sid = letter_recording_sid(letter.id)
        if self._store is None or sid is None:
            return None
        try:
            return refuse_if_erased(self._store, self._prefix, sid, asked_by="dlq replay", now=datetime.now(UTC),
                                    details={"letter_id": letter.id, "task": letter.task})
        except RecvaultError as error:
            # The archive task asks again before it downloads anything, and refuses an erased recording there.
            log.warning("erasure not checked before replay", extra={"id": letter.id, "error": str(error)})
            return None

    def _put(self, key: str, body: str) -> None:
        if self._store is None:
            return
        try:
            self._store.put_bytes(key, (body + "\n").encode(), content_type="application/json",
                                  retention=self._retention)
        except RecvaultError as error:
            # Redis still holds it (AOF in production); the S3 copy is the second home.
            log.warning("dead letter not copied to S3", extra={"key": key, "error": str(error)})

    def _audit(self, letter: DeadLetter, action: str, details: dict[str, Any]) -> None:
        """An entry in the recording's audit chain, when the letter is about one recording."""
        sid = letter_recording_sid(letter.id)
        if self._store is None or sid is None:
            return
        try:
            write_audit(self._store, self._prefix, sid, action, {"letter_id": letter.id, **details},
                        self._retention, datetime.now(UTC))
        except RecvaultError as error:
            # The letter itself is kept (Redis and S3); the chain misses this entry, and says so in the log.
            log.warning("dead letter not entered in the audit trail", extra={"id": letter.id, "error": str(error)})

    def _letter_key(self, letter: DeadLetter, suffix: str = "") -> str:
        stamp = letter.failed_at.replace(":", "").replace("+0000", "Z")
        return f"{self._folder}{_UNSAFE.sub('_', letter.id)}/{stamp}{suffix}.json"

    # --- reading ------------------------------------------------------------------
    def list(self) -> list[DeadLetter]:
        """Every unresolved letter, from Redis and from S3, oldest first."""
        letters = {(letter.id, letter.failed_at): letter for letter in self._from_s3()}
        for raw in self._client.hvals(DLQ_KEY):
            letter = DeadLetter(**json.loads(raw))
            letters[(letter.id, letter.failed_at)] = letter
        newest: dict[str, DeadLetter] = {}
        for letter in letters.values():
            if letter.id not in newest or letter.failed_at > newest[letter.id].failed_at:
                newest[letter.id] = letter
        return sorted(newest.values(), key=lambda letter: letter.failed_at)

    def get(self, id: str) -> DeadLetter | None:
        raw = self._client.hget(DLQ_KEY, id)
        if raw:
            return DeadLetter(**json.loads(raw))
        return next((letter for letter in self.list() if letter.id == id), None)

    def _from_s3(self) -> builtins.list[DeadLetter]:
        """Letters kept in S3 that no resolution record answers."""
        self.s3_error = None
        if self._store is None:
            return []
        letters: builtins.list[DeadLetter] = []
        resolved: set[tuple[str, str]] = set()
        try:
            for key in self._store.list_keys(self._folder):
                document = json.loads(self._store.get_bytes(key))
                if key.endswith("-resolved.json"):
                    resolved.add((document["id"], document["resolves"]))
                else:
                    letters.append(DeadLetter(**document))
        except RecvaultError as error:
            self.s3_error = str(error)
            return []
        return [letter for letter in letters if (letter.id, letter.failed_at) not in resolved]

    def close(self) -> None:
        self._client.close()
