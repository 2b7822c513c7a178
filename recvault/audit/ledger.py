"""The accepted-callback ledger: one compact row per callback ingest accepted, kept in a Redis stream.

The enqueue script (kombu_redis.ENQUEUE_ONCE) appends the row in the same atomic step that
queues the callback, so "accepted" and "queued" cannot disagree, whether the callback went
straight to Redis or waited in ingest's spool. A beat task copies the stream to S3
(audit.ledger_flush) and only then trims what it copied. A row is one stream field of
about 110 bytes: `RecordingSid|RecordingStatus|AccountSid|received_at`.
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from typing import Any

# The stream's name beside recvault's other keys (RedisKeys.recvault adds kombu's global prefix).
STREAM = "accepted"
FIELD = b"r"


@dataclass(frozen=True)
class AcceptedRow:
    """One accepted callback as the ledger keeps it."""

    recording_sid: str
    status: str
    account_sid: str
    received_at: str

    @property
    def day(self) -> str:
        return self.received_at[:10]

    def encode(self) -> str:
        return "|".join((self.recording_sid, self.status, self.account_sid, self.received_at))

    @classmethod
    def decode(cls, raw: bytes | str) -> AcceptedRow:
        text = raw.decode() if isinstance(raw, bytes) else raw
        sid, status, account, received_at = text.split("|", 3)
        return cls(sid, status, account, received_at)


def ledger_row(recording_sid: str, status: str, account_sid: str, received_at: str) -> str:
    """The row of one accepted callback (its RecordingSid, status and AccountSid, and when it came)."""
    return AcceptedRow(recording_sid, status, account_sid, received_at).encode()


def _first(params: dict[str, Any], name: str) -> str:
    value = params.get(name)
    return str(value[0] if isinstance(value, list) and value else value or "")


def row_from_message(message: str) -> str:
    """The ledger row of a callback message ingest built (read back from its spool); empty for others."""
    try:
        payload = json.loads(base64.b64decode(json.loads(message)["body"]))[0][0]
        params = payload["params"]
        if not isinstance(params, dict) or "RecordingSid" not in params:
            return ""
        return ledger_row(_first(params, "RecordingSid"), _first(params, "RecordingStatus"),
                          _first(params, "AccountSid"), str(payload.get("received_at", "")))
    except (ValueError, KeyError, IndexError, TypeError):
        return ""


def next_id(stream_id: str) -> str:
    """The smallest stream id after `stream_id` (XTRIM MINID keeps ids from there on)."""
    millis, seq = stream_id.split("-")
    return f"{millis}-{int(seq) + 1}"
