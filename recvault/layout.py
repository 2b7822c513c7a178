"""Where recvault keeps things: the bucket's key layout, its record format, the dead-letter index.

Layout under the configured prefix (Hive-style `date=` partitions for Athena/DuckDB)::

    media/date=2026-11-24/AC…/RE….wav         the recording, create-only, Object Lock
    metadata/date=2026-11-24/RE….json         one JSON line: the Recording resource + archive facts
    events/date=2026-11-24/RE…-absent.json    non-completed callbacks (in-progress, absent, failed, …)
    audit/date=2026-11-24/RE…/<time>-<action>.json   one record per action taken
    dead-letters/<id>/<time>.json             failures (and their resolutions), see workers.dlq

Keys are deterministic from the RecordingSid and the recording's start date (an audit
record's date is the day of its action), so a redelivered task finds its own earlier work
and a reader can find a recording's records without an index. Workers write this layout;
the operations read model (`recvault.ops`) reads it back.
"""

from __future__ import annotations

import json
import re
from datetime import datetime
from typing import Any, Literal

from recvault import sids

MEDIA = "media/"
METADATA = "metadata/"
EVENTS = "events/"
AUDIT = "audit/"
DEAD_LETTERS = "dead-letters/"
# The Redis hash (id → letter) that indexes unresolved dead letters beside the S3 copies.
DLQ_KEY = "recvault:dlq"
# A partition folder's name: `date=YYYY-MM-DD/`.
PARTITION = re.compile(r"date=(\d{4}-\d{2}-\d{2})/")
_RECORDING = sids.sid_pattern(sids.RECORDING)
# metadata/date=D/RE….json and events/date=D/RE…-<status>.json, after the prefix.
_METADATA_KEY = re.compile(rf"metadata/date=(\d{{4}}-\d{{2}}-\d{{2}})/({_RECORDING})\.json")
_EVENT_KEY = re.compile(rf"events/date=(\d{{4}}-\d{{2}}-\d{{2}})/({_RECORDING})-([a-z-]+)\.json")


def media_key(prefix: str, date: str, account_sid: str, recording_sid: str, fmt: str) -> str:
    return f"{prefix}{MEDIA}date={date}/{account_sid}/{recording_sid}.{fmt}"


def metadata_key(prefix: str, date: str, recording_sid: str) -> str:
    return f"{prefix}{METADATA}date={date}/{recording_sid}.json"


def event_key(prefix: str, date: str, recording_sid: str, status: str) -> str:
    return f"{prefix}{EVENTS}date={date}/{recording_sid}-{status}.json"


def audit_key(prefix: str, recording_sid: str, action: str, when: datetime) -> str:
    stamp = when.strftime("%Y%m%dT%H%M%S.%fZ")
    return f"{prefix}{AUDIT}date={when:%Y-%m-%d}/{recording_sid}/{stamp}-{action}.json"


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


def audit_record(prefix: str, recording_sid: str, action: str, details: dict[str, Any],
                 when: datetime) -> tuple[str, bytes]:
    """(key, body) of one audit record; every writer of the trail uses this shape."""
    record = {"recording_sid": recording_sid, "action": action, "at": when.isoformat(), **details}
    return audit_key(prefix, recording_sid, action, when), json_line(record)


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
# The recording_sid of audit records that belong to no one recording.
SYSTEM_SID = "system"


def hold_key(prefix: str, hold_id: str, state: Literal["set", "released"]) -> str:
    return f"{prefix}{HOLDS}{hold_id}/{state}.json"


def erasure_key(prefix: str, recording_sid: str, state: Literal["pending", "done"]) -> str:
    return f"{prefix}{ERASURES}{state}/{recording_sid}.json"


def tombstone_key(prefix: str, recording_sid: str) -> str:
    return f"{prefix}{TOMBSTONES}{recording_sid}.json"


def audit_folder(prefix: str, date: str, recording_sid: str) -> str:
    """The folder of one recording's audit records written on one day."""
    return f"{prefix}{AUDIT}date={date}/{recording_sid}/"
