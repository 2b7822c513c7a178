"""Copy the accepted-callback ledger from its Redis stream to S3, then trim what was copied.

Each object holds one run of consecutive stream entries of one UTC day, named after the
first entry's id, create-only and COMPLIANCE-locked. A flush that crashed after writing and
before trimming finds its object on the next run (same first id, same key), reads which id
it ended at and trims up to there: rows are neither lost nor written twice.
"""

from __future__ import annotations

import json
import logging

import redis

from recvault import layout
from recvault.audit.ledger import FIELD, AcceptedRow, next_id
from recvault.errors import AlreadyExists
from recvault.storage.base import ObjectStore, Retention

log = logging.getLogger("recvault.worker")

# Stream entries read per round (about 110 bytes each: ~0.5 MB per object at most).
BATCH = 5000


def _run_of_one_day(entries: list[tuple[str, AcceptedRow]]) -> list[tuple[str, AcceptedRow]]:
    day = entries[0][1].day
    run = []
    for stream_id, row in entries:
        if row.day != day:
            break
        run.append((stream_id, row))
    return run


def flush_accepted(client: redis.Redis, stream: str, store: ObjectStore, prefix: str, retention: Retention,
                   *, batch: int = BATCH) -> int:
    """Move every row now in the stream to S3; returns how many rows were written."""
    written = 0
    while True:
        raw = client.xrange(stream, min="-", max="+", count=batch)
        if not raw:
            return written
        entries = [(_text(stream_id), AcceptedRow.decode(_text((fields or {})[FIELD]))) for stream_id, fields in raw]
        run = _run_of_one_day(entries)
        first_id = run[0][0]
        key = layout.accepted_key(prefix, run[0][1].day, first_id)
        body = b"".join(layout.json_line({"id": stream_id, "sid": row.recording_sid, "status": row.status,
                                          "account_sid": row.account_sid, "received_at": row.received_at})
                        for stream_id, row in run)
        try:
            store.put_bytes(key, body, content_type="application/x-ndjson", retention=retention)
            last_id = run[-1][0]
            written += len(run)
        except AlreadyExists:
            # An earlier flush wrote this run and stopped before trimming: trim what it holds.
            last_id = json.loads(store.get_bytes(key).splitlines()[-1])["id"]
        client.xtrim(stream, minid=next_id(last_id), approximate=False)
        log.info("accepted ledger flushed", extra={"key": key, "rows": len(run)})


def _text(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
