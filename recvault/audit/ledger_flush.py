"""Copy the accepted-callback ledger from its Redis stream to S3, then trim what was copied.

Each object holds the rows of one run of consecutive stream entries of one UTC day, named after
the run's first row's id, create-only and COMPLIANCE-locked. A flush that crashed after writing
and before trimming finds its object on the next run (same first id, same key), checks that it
holds exactly what the stream holds up to its last id, and trims up to there: rows are neither
lost nor written twice.

An entry that is not a ledger row (ledger.decode_entry says why) does not stop the flush: it is
moved aside whole, its field names and values base64-encoded, to
`audit/ledger-rejected/date=<the day Redis added it>/<stream id>.json` (create-only, locked like
the ledger), and trimmed with the rows around it. `rejected_rows` reads those back for
`audit verify`. One bad entry used to make every flush fail, so nothing accepted after it
reached S3.

Create-only keys can be taken by anyone allowed PutObject, and the keys here are predictable.
So an object found at a key is trusted only when its first version holds exactly what this
flush would write there (audit.originals); otherwise the flush writes under the same name with
its content's digest added, and never trims rows on the word of an object it did not write.
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass
from typing import Any

import redis

from recvault import layout
from recvault.audit.ledger import id_day, next_id, raw_fields
from recvault.audit.ledger_tail import BATCH, Entry, read_entries, read_range
from recvault.audit.originals import original_bytes, versions_by_key
from recvault.errors import AlreadyExists, PermanentError
from recvault.storage.base import ObjectStore, Retention

log = logging.getLogger("recvault.worker")

class LedgerKeyTaken(PermanentError):
    """Both the key a ledger object belongs at and its digest-named alternative hold something else."""


@dataclass(frozen=True)
class Flushed:
    """What one flush moved: rows written to the ledger's objects, malformed entries moved aside."""

    written: int
    rejected: int


def flush(client: redis.Redis, stream: str, store: ObjectStore, prefix: str, retention: Retention,
          *, batch: int = BATCH) -> Flushed:
    """Move every entry now in the stream to S3: rows to the ledger, malformed entries aside; then trim."""
    written = rejected = 0
    while True:
        entries = read_entries(client.xrange(stream, min="-", max="+", count=batch))
        if not entries:
            return Flushed(written, rejected)
        span = _span_of_one_day(entries)
        rejected += sum(_move_aside(store, prefix, retention, entry) for entry in span if entry.row is None)
        last_id = span[-1].id
        rows = [entry for entry in span if entry.row is not None]
        if rows:
            count, earlier = _write_rows(client, stream, store, prefix, retention, rows)
            written += count
            if earlier is not None:
                # An earlier flush wrote this run and stopped before trimming: trim what it holds,
                # once every malformed entry among it is aside too.
                rejected += sum(_move_aside(store, prefix, retention, entry) for entry in earlier if entry.row is None)
                last_id = earlier[-1].id
        client.xtrim(stream, minid=next_id(last_id), approximate=False)
        log.info("accepted ledger flushed", extra={"rows": len(rows), "rejected": len(span) - len(rows),
                                                   "through": last_id})


def flush_accepted(client: redis.Redis, stream: str, store: ObjectStore, prefix: str, retention: Retention,
                   *, batch: int = BATCH) -> int:
    """Move every entry now in the stream to S3 (see `flush`); returns how many rows were written."""
    return flush(client, stream, store, prefix, retention, batch=batch).written


def _span_of_one_day(entries: list[Entry]) -> list[Entry]:
    """The leading entries up to the first row of another day than the first row's (malformed ones included)."""
    day = None
    for n, entry in enumerate(entries):
        if entry.row is None:
            continue
        if day is None:
            day = entry.row.day
        elif entry.row.day != day:
            return entries[:n]
    return entries


def _document(entry: Entry) -> dict[str, Any]:
    """A row as the ledger's objects hold it, one JSON line each."""
    row = entry.row
    assert row is not None  # only rows are written to the ledger
    return {"id": entry.id, "sid": row.recording_sid, "status": row.status, "account_sid": row.account_sid,
            "received_at": row.received_at}


def _write_rows(client: redis.Redis, stream: str, store: ObjectStore, prefix: str, retention: Retention,
                rows: list[Entry]) -> tuple[int, list[Entry] | None]:
    """Write one day's rows as one object: (rows written, and the entries an earlier flush's object
    covers when it was found there instead)."""
    assert rows[0].row is not None
    day, first_id = rows[0].row.day, rows[0].id
    body = b"".join(layout.json_line(_document(entry)) for entry in rows)
    key = layout.accepted_key(prefix, day, first_id)
    try:
        store.put_bytes(key, body, content_type="application/x-ndjson", retention=retention)
        return len(rows), None
    except AlreadyExists:
        pass
    earlier = _covered_by(client, stream, _held_rows(store, key), first_id)
    if earlier is not None:
        return 0, earlier
    # Not this flush's object: the rows go beside it, under a name that says what they are.
    log.warning("accepted ledger key taken by an object the flush did not write", extra={"key": key})
    alternative = layout.accepted_key(prefix, day, first_id, _digest(body))
    try:
        store.put_bytes(alternative, body, content_type="application/x-ndjson", retention=retention)
        return len(rows), None
    except AlreadyExists:
        if original_bytes(store, alternative) == body:
            return 0, None
    raise LedgerKeyTaken(f"{key} and {alternative} hold objects the ledger flush did not write")


def _held_rows(store: ObjectStore, key: str) -> list[dict[str, Any]] | None:
    """The rows the first version at `key` holds (None: none left, or not ledger rows)."""
    original = original_bytes(store, key)
    try:
        held = [json.loads(line) for line in original.splitlines()] if original else None
    except ValueError:
        return None
    return held if held and all(isinstance(row, dict) and isinstance(row.get("id"), str) for row in held) else None


def _covered_by(client: redis.Redis, stream: str, held: list[dict[str, Any]] | None,
                first_id: str) -> list[Entry] | None:
    """The stream's entries from `first_id` through the last held row, when its rows are exactly `held`."""
    if not held or held[0]["id"] != first_id:
        return None
    entries = read_range(client, stream, first_id, held[-1]["id"])
    return entries if [_document(entry) for entry in entries if entry.row is not None] == held else None


def _move_aside(store: ObjectStore, prefix: str, retention: Retention, entry: Entry) -> bool:
    """Keep a malformed entry whole in S3; False when an earlier flush already did."""
    document = {"id": entry.id, "fields": raw_fields(entry.fields), "error": entry.problem}
    body = layout.json_line(document)
    day = id_day(entry.id)
    for key in (layout.rejected_row_key(prefix, day, entry.id),
                layout.rejected_row_key(prefix, day, entry.id, _digest(body))):
        try:
            store.put_bytes(key, body, content_type="application/json", retention=retention)
        except AlreadyExists:
            if _same_entry(original_bytes(store, key), document):
                return False
            continue
        # The entry's bytes go only into the object: they may be anything.
        log.warning("malformed accepted-ledger entry moved aside", extra={"stream_id": entry.id, "key": key,
                                                                          "error": entry.problem})
        return True
    raise LedgerKeyTaken(f"the keys of malformed ledger entry {entry.id} hold objects the flush did not write")


def _same_entry(original: bytes | None, document: dict[str, Any]) -> bool:
    """Whether a moved-aside entry's first version is this entry (the error's wording may differ)."""
    try:
        held = json.loads(original) if original else None
    except ValueError:
        return False
    return isinstance(held, dict) and (held.get("id"), held.get("fields")) == (document["id"], document["fields"])


def _digest(body: bytes) -> str:
    return hashlib.sha256(body).hexdigest()[:16]


def rejected_rows(store: ObjectStore, prefix: str, days: list[str]) -> list[tuple[str, dict[str, Any]]]:
    """Every malformed entry the flush moved aside on `days` (by the day Redis added it): (key, record).

    The record is the first version's: {"id", "fields" (base64 name → base64 value), "error"}; one
    that cannot be read as such is {"id": <from its key>, "unreadable": why}. Later versions and
    delete markers over these keys are for audit verify's checks of what is written once.
    """
    found: list[tuple[str, dict[str, Any]]] = []
    for day in days:
        for key, versions in versions_by_key(store, layout.partition_prefix(prefix, layout.AUDIT_LEDGER_REJECTED,
                                                                             day)).items():
            parsed = layout.parse_rejected_row_key(prefix, key)
            stream_id = parsed[1] if parsed else ""
            if versions.original is None:
                found.append((key, {"id": stream_id, "unreadable": "no version left, only delete markers"}))
                continue
            try:
                record = json.loads(store.get_bytes(key, versions.original.version_id))
            except ValueError:
                record = None
            if not isinstance(record, dict) or not {"id", "fields", "error"} <= record.keys():
                record = {"id": stream_id, "unreadable": "not a record of a malformed ledger entry"}
            found.append((key, record))
    return found
