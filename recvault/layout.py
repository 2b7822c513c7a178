"""Where recvault keeps things: the bucket's key layout, its record format, the dead-letter index.

Layout under the configured prefix (Hive-style `date=` partitions for Athena/DuckDB)::

    media/date=2026-11-24/AC…/RE….wav         the recording, create-only, Object Lock
    metadata/date=2026-11-24/RE….json         one JSON line: the Recording resource + archive facts
    events/date=2026-11-24/RE…-absent.json    non-completed callbacks (in-progress, absent, failed, …)
    dead-letters/<id>/<time>.json             failures (and their resolutions), see workers.dead_letters

The audit trail (hash-chained, see recvault.audit.chain; appended by recvault.audit.append)::

    audit/chains/RE…/000001.json              a recording's chain: entry 1, 2, … (create-only, locked
                                              like the recording); entry n+1 holds entry n's SHA-256
    audit/chains/system-2026-11-24/000001.json  one chain per day for actions of no one recording
    audit/index/date=2026-11-24/<chain>-000003-<sha16>   empty: "an entry may exist here", written
                                              before the entry, so the sealer never lists chains
    audit/seals/date=2026-11-24/130000.json   one period's Merkle root (the period that starts at
                                              13:00:00 UTC) over its entries, their index rows and
                                              the ledger objects that appeared in it, chained to the
                                              previous seal (COMPLIANCE-locked)
    audit/seals/date=2026-11-24.json          a whole day's seal, as older releases wrote it
    audit/accepted/date=2026-11-24/<stream id>.jsonl   callbacks ingest accepted, flushed from Redis
    audit/ledger-rejected/date=2026-11-24/<stream id>.json   a malformed ledger entry, moved aside
                                              whole by the flush (the day: when Redis added it)

Keys are deterministic from the RecordingSid and the recording's start date (an audit
entry's key from its chain and number), so a redelivered task finds its own earlier work
and a reader can find a recording's records without an index. Workers write this layout;
the operations read model (`recvault.ops`) reads it back.
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from typing import Any, Literal

from recvault import sids

MEDIA = "media/"
METADATA = "metadata/"
EVENTS = "events/"
AUDIT = "audit/"
AUDIT_CHAINS = "audit/chains/"
AUDIT_INDEX = "audit/index/"
AUDIT_SEALS = "audit/seals/"
AUDIT_ACCEPTED = "audit/accepted/"
AUDIT_LEDGER_REJECTED = "audit/ledger-rejected/"
DEAD_LETTERS = "dead-letters/"
# The Redis hash (id → letter) that indexes unresolved dead letters beside the S3 copies.
DLQ_KEY = "recvault:dlq"


def letter_recording_sid(letter_id: str) -> str | None:
    """The RecordingSid a dead letter is about (its id starts with it), or None for a letter about no one recording."""
    sid = letter_id.split(":", 1)[0]
    return sid if sids.is_sid(sid, sids.RECORDING) else None


# A partition folder's name: `date=YYYY-MM-DD/`.
PARTITION = re.compile(r"date=(\d{4}-\d{2}-\d{2})/")
_RECORDING = sids.sid_pattern(sids.RECORDING)
# metadata/date=D/RE….json and events/date=D/RE…-<status>.json, after the prefix.
_METADATA_KEY = re.compile(rf"metadata/date=(\d{{4}}-\d{{2}}-\d{{2}})/({_RECORDING})\.json")
_CHAIN_KEY = re.compile(r"audit/chains/([A-Za-z0-9-]+)/(\d{6,})\.json")
_INDEX_KEY = re.compile(r"audit/index/date=\d{4}-\d{2}-\d{2}/([A-Za-z0-9-]+)-(\d{6,})-[0-9a-f]{16}")
_SEAL_KEY = re.compile(r"audit/seals/date=(\d{4}-\d{2}-\d{2})(?:/(\d{2})(\d{2})(\d{2}))?\.json")
_REJECTED_KEY = re.compile(r"audit/ledger-rejected/date=(\d{4}-\d{2}-\d{2})/(\d+-\d+)(?:\.[0-9a-f]{16})?\.json")
_EVENT_KEY = re.compile(rf"events/date=(\d{{4}}-\d{{2}}-\d{{2}})/({_RECORDING})-([a-z-]+)\.json")


def media_key(prefix: str, date: str, account_sid: str, recording_sid: str, fmt: str) -> str:
    return f"{prefix}{MEDIA}date={date}/{account_sid}/{recording_sid}.{fmt}"


def metadata_key(prefix: str, date: str, recording_sid: str) -> str:
    return f"{prefix}{METADATA}date={date}/{recording_sid}.json"


def event_key(prefix: str, date: str, recording_sid: str, status: str) -> str:
    return f"{prefix}{EVENTS}date={date}/{recording_sid}-{status}.json"


def chain_prefix(prefix: str, chain: str) -> str:
    """The folder of one audit chain (a RecordingSid, or `system-<day>`)."""
    return f"{prefix}{AUDIT_CHAINS}{chain}/"


def chain_key(prefix: str, chain: str, seq: int) -> str:
    return f"{chain_prefix(prefix, chain)}{seq:06d}.json"


def parse_chain_key(prefix: str, key: str) -> tuple[str, int] | None:
    """(chain, seq) of an audit entry's key, or None for any other key."""
    found = _CHAIN_KEY.fullmatch(key.removeprefix(prefix)) if key.startswith(prefix) else None
    return (found[1], int(found[2])) if found else None


def index_key(prefix: str, day: str, chain: str, seq: int, entry_sha256: str) -> str:
    """The day's index row of one entry (the hash names which of two racing writers it is)."""
    return f"{prefix}{AUDIT_INDEX}date={day}/{chain}-{seq:06d}-{entry_sha256[:16]}"


def parse_index_key(prefix: str, key: str) -> tuple[str, int] | None:
    """(chain, seq) an index row points at, or None for any other key."""
    found = _INDEX_KEY.fullmatch(key.removeprefix(prefix)) if key.startswith(prefix) else None
    return (found[1], int(found[2])) if found else None


def seal_key(prefix: str, period_start: datetime) -> str:
    """The seal of the period that starts at `period_start` (UTC): under its day, named HHMMSS."""
    start = period_start.astimezone(UTC)
    return f"{prefix}{AUDIT_SEALS}date={start:%Y-%m-%d}/{start:%H%M%S}.json"


def day_seal_key(prefix: str, day: str) -> str:
    """A whole day's seal, as releases before period seals wrote it (read, never written)."""
    return f"{prefix}{AUDIT_SEALS}date={day}.json"


def seals_of_day_prefix(prefix: str, day: str) -> str:
    """What every seal key of a day starts with: its period seals' folder and its day seal alike."""
    return f"{prefix}{AUDIT_SEALS}date={day}"


def parse_seal_key(prefix: str, key: str) -> datetime | None:
    """The period start (UTC) a seal's key names, a day seal's its midnight; None for any other key."""
    found = _SEAL_KEY.fullmatch(key.removeprefix(prefix)) if key.startswith(prefix) else None
    if found is None:
        return None
    try:
        day = datetime.fromisoformat(found[1]).replace(tzinfo=UTC)
        return day.replace(hour=int(found[2]), minute=int(found[3]), second=int(found[4])) if found[2] else day
    except ValueError:
        return None


def accepted_key(prefix: str, day: str, first_id: str, digest: str = "") -> str:
    """A flushed batch of the accepted-callback ledger, named by its first stream id.

    `digest` (16 hex digits of the batch's SHA-256) names it when something the flush did not
    write already holds the plain key: create-only keys can be taken by anyone allowed PutObject.
    """
    return f"{prefix}{AUDIT_ACCEPTED}date={day}/{first_id}{'.' + digest if digest else ''}.jsonl"


def rejected_row_key(prefix: str, day: str, stream_id: str, digest: str = "") -> str:
    """A malformed ledger entry moved aside, under the day Redis added it (`digest` as for accepted_key)."""
    return f"{prefix}{AUDIT_LEDGER_REJECTED}date={day}/{stream_id}{'.' + digest if digest else ''}.json"


def parse_rejected_row_key(prefix: str, key: str) -> tuple[str, str] | None:
    """(day, stream id) of a moved-aside ledger entry's key, or None for any other key."""
    found = _REJECTED_KEY.fullmatch(key.removeprefix(prefix)) if key.startswith(prefix) else None
    return (found[1], found[2]) if found else None


def partition_prefix(prefix: str, folder: str, date: str) -> str:
    """The folder of one day's partition, e.g. `metadata/date=2026-11-24/`."""
    return f"{prefix}{folder}date={date}/"


def parse_metadata_key(prefix: str, key: str) -> tuple[str, str] | None:
    """(date, RecordingSid) of a metadata document's key, or None for any other key."""
    found = _METADATA_KEY.fullmatch(key.removeprefix(prefix)) if key.startswith(prefix) else None
    return (found[1], found[2]) if found else None


def parse_event_key(prefix: str, key: str) -> tuple[str, str, str] | None:
    """(date, RecordingSid, status) of an event document's key, or None for any other key."""
    found = _EVENT_KEY.fullmatch(key.removeprefix(prefix)) if key.startswith(prefix) else None
    return (found[1], found[2], found[3]) if found else None


def json_line(document: dict[str, Any]) -> bytes:
    """One JSON object on one line, as Athena and DuckDB read it."""
    return (json.dumps(document, separators=(",", ":"), sort_keys=True, default=str) + "\n").encode()


LockMode = Literal["COMPLIANCE", "GOVERNANCE"]


def retention_fields(document: dict[str, Any]) -> tuple[LockMode | None, datetime | None, bool]:
    """(mode, retain-until, legal hold) a metadata document records, for every later object of its recording."""
    until = document.get("retain_until")
    mode = document.get("retention_mode")
    locked = mode if mode in ("COMPLIANCE", "GOVERNANCE") and until else None
    return locked, datetime.fromisoformat(until) if until else None, bool(document.get("legal_hold"))


# --- holds, erasures, tombstones: the compliance controls' records -------------------------
# holds/<hold id>/set.json and holds/<hold id>/released.json: a durable registry of legal holds.
HOLDS = "holds/"
# erasures/pending/RE….json (a request waiting for its lock to end), erasures/done/RE….json.
ERASURES = "erasures/"
# tombstones/RE….json: what was erased, without personal data.
TOMBSTONES = "tombstones/"
# The folders recvault writes only create-only (If-None-Match: *); the bucket policy init-bucket
# sets refuses any other write there. Not metadata/: a price update rewrites its document.
CREATE_ONLY_FOLDERS = (MEDIA, EVENTS, AUDIT, TOMBSTONES, HOLDS, ERASURES, DEAD_LETTERS)


def hold_key(prefix: str, hold_id: str, state: Literal["set", "released"]) -> str:
    return f"{prefix}{HOLDS}{hold_id}/{state}.json"


def erasure_key(prefix: str, recording_sid: str, state: Literal["pending", "done"]) -> str:
    return f"{prefix}{ERASURES}{state}/{recording_sid}.json"


def tombstone_key(prefix: str, recording_sid: str) -> str:
    return f"{prefix}{TOMBSTONES}{recording_sid}.json"


def record_recording_sid(key: str) -> str:
    """What a tombstone's or an erasure request's key names: its file name, the RecordingSid."""
    return key.rsplit("/", 1)[-1].removesuffix(".json")
