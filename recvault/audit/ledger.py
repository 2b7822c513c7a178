"""The accepted-callback ledger: one compact row per callback ingest accepted, kept in a Redis stream.

The enqueue script (kombu_redis.ENQUEUE_ONCE) appends the row in the same atomic step that
queues the callback, so "accepted" and "queued" cannot disagree, whether the callback went
straight to Redis or waited in ingest's spool. A beat task copies the stream to S3
(audit.ledger_flush) and only then trims what it copied. A row is one stream field of
about 110 bytes: `RecordingSid|RecordingStatus|AccountSid|received_at`.

Anything else found in the stream (another field, a row that is not four parts, bytes that are
not UTF-8, a SID of the wrong kind, a time that is not UTC ISO 8601) is a *malformed* entry:
`decode_entry` says why without quoting it, and the flush moves it aside whole instead of
stopping at it.
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from recvault import sids

# The stream's name beside recvault's other keys (RedisKeys.recvault adds kombu's global prefix).
STREAM = "accepted"
FIELD = b"r"
# A callback's RecordingStatus as ingest accepts it (`in-progress`, `completed`, `absent`, …).
_STATUS = re.compile(r"[a-z]+(?:-[a-z]+)*")
# A stream id: milliseconds since the epoch, a dash, a sequence number.
_STREAM_ID = re.compile(r"(\d+)-(\d+)")


class MalformedRow(ValueError):
    """A stream entry that is not one ledger row; the message says why and never quotes it."""


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
        """The row `raw` holds; MalformedRow when it is not one, so `day` always names a real UTC day."""
        try:
            text = raw.decode() if isinstance(raw, bytes) else raw
        except UnicodeDecodeError:
            raise MalformedRow("the row is not UTF-8") from None
        parts = text.split("|")
        if len(parts) != 4:
            raise MalformedRow(f"the row has {len(parts)} '|'-separated parts, not 4")
        sid, status, account, received_at = parts
        if not sids.is_sid(sid, sids.RECORDING):
            raise MalformedRow("the first part is not a RecordingSid")
        if not _STATUS.fullmatch(status):
            raise MalformedRow("the second part is not a RecordingStatus")
        if not sids.is_sid(account, sids.ACCOUNT):
            raise MalformedRow("the third part is not an AccountSid")
        _check_received_at(received_at)
        return cls(sid, status, account, received_at)


def _check_received_at(text: str) -> None:
    """received_at is an ISO 8601 UTC time starting with its YYYY-MM-DD day (what ingest writes)."""
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise MalformedRow("received_at is not an ISO 8601 time") from None
    if moment.utcoffset() != timedelta(0):
        raise MalformedRow("received_at is not in UTC")
    if text[:10] != moment.date().isoformat():
        raise MalformedRow("received_at does not start with its YYYY-MM-DD day")


def decode_entry(fields: Mapping[bytes, bytes] | Mapping[str, str]) -> AcceptedRow:
    """The row one stream entry holds (its one field `r`); MalformedRow when it holds anything else."""
    names = {_bytes(name) for name in fields}
    if names != {FIELD}:
        raise MalformedRow(f"the entry has {len(names)} field(s), not the one field 'r'" if FIELD in names
                           else "the entry has no field 'r'")
    (value,) = fields.values()
    return AcceptedRow.decode(_bytes(value))


def raw_fields(fields: Mapping[bytes, bytes] | Mapping[str, str]) -> dict[str, str]:
    """An entry's field names and values exactly as stored, base64 both, for a record of a malformed entry."""
    return {_b64(name): _b64(value) for name, value in fields.items()}


def raw_entry(fields: Mapping[bytes, bytes] | Mapping[str, str]) -> bytes:
    """An entry's bytes: its `r` field when that is all it has, else `raw_fields` as one JSON line."""
    if len(fields) == 1 and {_bytes(name) for name in fields} == {FIELD}:
        (value,) = fields.values()
        return _bytes(value)
    return (json.dumps(raw_fields(fields), sort_keys=True, separators=(",", ":")) + "\n").encode()


def _bytes(value: object) -> bytes:
    return value if isinstance(value, bytes) else str(value).encode()


def _b64(value: object) -> str:
    return base64.b64encode(_bytes(value)).decode()


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


def id_millis(stream_id: str) -> int:
    """When Redis added the entry (milliseconds since the epoch): the first half of its id."""
    found = _STREAM_ID.fullmatch(stream_id)
    if found is None:
        raise ValueError(f"{stream_id[:40]!r} is not a stream id")
    return int(found[1])


def id_day(stream_id: str) -> str:
    """The UTC day Redis added the entry, YYYY-MM-DD (a malformed entry has no received_at to go by)."""
    return datetime.fromtimestamp(id_millis(stream_id) / 1000, UTC).date().isoformat()


def age_seconds(oldest_id: str | None, now: datetime) -> float:
    """How long the oldest entry has waited in the stream (0 when the stream is empty)."""
    if oldest_id is None:
        return 0.0
    return max(0.0, now.timestamp() - id_millis(oldest_id) / 1000)
