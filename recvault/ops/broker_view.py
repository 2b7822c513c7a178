"""What the broker says: queue depth and the dead-letter index, read with bounded cost."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import datetime

import redis

from recvault import layout, sids
from recvault.queue.depth import QueueDepth, queue_depth
from recvault.queue.kombu_redis import RedisKeys

# Unresolved dead letters read per look (HSCAN); the total always comes from HLEN.
LETTERS_READ = 2000
# SIDs in a reason make every reason unique; grouping replaces them with their kind.
_SID = re.compile(r"\b(" + "|".join((sids.RECORDING, sids.CALL, sids.ACCOUNT, sids.CONFERENCE, sids.API_KEY))
                  + r")[0-9a-fA-F]{32}\b")


@dataclass(frozen=True)
class Letter:
    """One unresolved dead letter, as the status page shows it."""

    id: str
    error: str
    reason: str
    failed_at: datetime | None

    @property
    def recording_sid(self) -> str | None:
        return layout.letter_recording_sid(self.id)

    @property
    def reason_kind(self) -> str:
        """The reason with SIDs replaced by their kind, so alike failures group together."""
        return _SID.sub(lambda found: f"{found[1]}…", self.reason)[:160]


@dataclass(frozen=True)
class Letters:
    """Unresolved dead letters: how many, and those read."""

    total: int
    read: list[Letter]


class BrokerView:
    """Queue depth and dead letters, from the broker recvault's queue lives on."""

    def __init__(self, client: redis.Redis, keys: RedisKeys) -> None:
        self._client = client
        self._keys = keys

    def depth(self) -> QueueDepth:
        return queue_depth(self._client, self._keys)

    def dead_letters(self, limit: int = LETTERS_READ) -> Letters:
        total = int(self._client.hlen(layout.DLQ_KEY))
        letters: list[Letter] = []
        for _, raw in self._client.hscan_iter(layout.DLQ_KEY, count=500):
            letters.append(_letter(raw))
            if len(letters) >= limit:
                break
        return Letters(total, letters)

    def letters_of(self, recording_sid: str) -> list[dict[str, object]]:
        """Unresolved dead letters of one recording (ids `RE…:status`, `RE…:refresh`), as stored."""
        found = []
        for _, raw in self._client.hscan_iter(layout.DLQ_KEY, match=f"{recording_sid}:*", count=500):
            try:
                found.append(json.loads(raw))
            except ValueError:
                continue
        return found

    def close(self) -> None:
        self._client.close()


def _letter(raw: bytes | str) -> Letter:
    try:
        data = json.loads(raw)
    except ValueError:
        data = {}
    if not isinstance(data, dict):
        data = {}
    try:
        failed_at = datetime.fromisoformat(str(data.get("failed_at")))
    except ValueError:
        failed_at = None
    return Letter(str(data.get("id", "?")), str(data.get("error", "?")), str(data.get("reason", "")), failed_at)
