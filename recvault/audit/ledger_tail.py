"""The accepted-callback ledger still in Redis, read without consuming it.

Rows stay in the stream until the flush (audit.ledger_flush) has copied them to S3, up to a
quarter of an hour, longer while the flush fails. `audit verify` reads them here so a callback
accepted since the last flush is still accounted for, and ingest's `/metrics` reads how old the
oldest one is (`recvault_ledger_oldest_row_age_seconds`), so a flush that has stopped is
noticed. Nothing here trims, deletes or acknowledges: XRANGE only.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import redis

from recvault.audit import ledger
from recvault.audit.ledger import AcceptedRow, MalformedRow
from recvault.errors import ConfigurationError
from recvault.queue.broker import BrokerAddress
from recvault.queue.kombu_redis import RedisKeys
from recvault.settings import Settings

# Stream entries read per XRANGE (about 110 bytes each).
BATCH = 5000
# Socket and connect timeouts of the tail's own client: a reader that must not hang on a broker away.
TIMEOUT_SECONDS = 2.0

# What read_tail returns per entry: its stream id, its row (None: malformed) and its bytes.
TailRow = tuple[str, AcceptedRow | None, bytes]


@dataclass(frozen=True)
class Entry:
    """One stream entry as read: its row, or why it is none (`problem`), and its fields as stored."""

    id: str
    row: AcceptedRow | None
    fields: Mapping[bytes, bytes]
    problem: str = ""

    @property
    def raw(self) -> bytes:
        """The entry's bytes (see ledger.raw_entry)."""
        return ledger.raw_entry(self.fields)


def read_entries(reply: Sequence[tuple[Any, Any]] | None) -> list[Entry]:
    """XRANGE's reply as entries; one that does not decode keeps its fields and says why."""
    entries = []
    for stream_id, fields in reply or ():
        raw = {_bytes(name): _bytes(value) for name, value in (fields or {}).items()}
        try:
            entries.append(Entry(_text(stream_id), ledger.decode_entry(raw), raw))
        except MalformedRow as error:
            entries.append(Entry(_text(stream_id), None, raw, str(error)))
    return entries


def read_range(client: redis.Redis, stream: str, first: str, last: str, *, batch: int = BATCH) -> list[Entry]:
    """Every entry from `first` through `last` (stream ids, or "-"), read in batches."""
    entries: list[Entry] = []
    start = first
    while True:
        found = read_entries(client.xrange(stream, min=start, max=last, count=batch))
        entries.extend(found)
        if len(found) < batch:
            return entries
        start = ledger.next_id(found[-1].id)


def read_tail(client: redis.Redis, stream: str) -> list[TailRow]:
    """Every entry now in the stream, oldest first: (stream id, row or None when malformed, its bytes).

    Reads up to the entry that was newest when it began, so a busy stream cannot keep it reading.
    """
    newest = client.xrevrange(stream, count=1)
    if not newest:
        return []
    return [(entry.id, entry.row, entry.raw) for entry in read_range(client, stream, "-", _text(newest[0][0]))]


def oldest_row_age(client: redis.Redis, stream: str, now: datetime | None = None) -> float:
    """Seconds since Redis added the oldest entry still in the stream (0 when empty), from its id."""
    oldest = client.xrange(stream, min="-", max="+", count=1)
    return ledger.age_seconds(_text(oldest[0][0]) if oldest else None, now or datetime.now(UTC))


def stream_key(settings: Settings) -> str:
    """The ledger stream's key, as ingest's enqueue script and the flush task name it."""
    return RedisKeys.for_queue(settings.queue, settings.broker_transport_options).recvault(ledger.STREAM)


def tail_client(settings: Settings, *, timeout: float = TIMEOUT_SECONDS) -> redis.Redis:
    """A client of the configured broker (Sentinel and TLS as everywhere) that gives up after `timeout`.

    Connects on first use; redis-py's own retries are off, so an unreachable broker fails at once.
    """
    options = settings.broker_transport_options
    return BrokerAddress.parse(settings.broker_url, options).client(
        socket_timeout=timeout, socket_connect_timeout=timeout, fail_fast=True,
        socket_keepalive=bool(options.get("socket_keepalive", True)), client_name=options.get("client_name"))


@dataclass(frozen=True)
class TailRead:
    """What the broker held of the ledger, or why it could not be read (`problem`, never a secret)."""

    rows: list[TailRow] = field(default_factory=list)
    reachable: bool = True
    problem: str = ""


def tail_from_settings(settings: Settings) -> TailRead:
    """The ledger's tail on the configured broker; never raises for a broker out of reach."""
    try:
        stream = stream_key(settings)
        client = tail_client(settings)
    except ConfigurationError as error:  # names the setting, never its value
        return TailRead(reachable=False, problem=str(error))
    try:
        return TailRead(read_tail(client, stream))
    except (redis.RedisError, OSError) as error:
        return TailRead(reachable=False, problem=_unreachable(error, settings))
    finally:
        client.close()


def _unreachable(error: BaseException, settings: Settings) -> str:
    """Why the broker could not be read, with the broker's password blanked should the error quote it."""
    text = f"the broker did not answer ({type(error).__name__}: {error})"
    password = BrokerAddress.parse(settings.broker_url, settings.broker_transport_options).password
    return text.replace(password, "***") if password else text


def _bytes(value: object) -> bytes:
    return value if isinstance(value, bytes) else str(value).encode()


def _text(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
