"""Where things are stored and what the metadata documents say.

Layout under the configured prefix (Hive-style `date=` partitions for Athena/DuckDB)::

    media/date=2026-11-24/AC…/RE….wav         the recording, create-only, Object Lock
    metadata/date=2026-11-24/RE….json         one JSON line: the Recording resource + archive facts
    events/date=2026-11-24/RE…-absent.json    non-completed callbacks (in-progress, absent, failed, …)
    audit/date=2026-11-24/RE…/<time>-<action>.json   one record per action taken

Keys are deterministic from the RecordingSid and the recording's start date, so a
redelivered task finds its own earlier work.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any

from recvault import __version__
from recvault.storage.base import Retention

# The Recording resource's fields as Twilio names them; every document carries them all.
RECORDING_FIELDS = (
    "account_sid", "api_version", "call_sid", "channels", "conference_sid", "date_created",
    "date_updated", "duration", "encryption_details", "error_code", "price", "price_unit",
    "sid", "uri", "source", "start_time", "status", "track", "media_url",
)
PIPELINE_VERSION = f"recvault/{__version__}"
CONTENT_TYPES = {"wav": "audio/x-wav", "mp3": "audio/mpeg"}


def recording_date(start_time: str | None, fallback: datetime) -> str:
    """The partition date (UTC) of a recording, from Twilio's RFC 2822 start_time."""
    if start_time:
        try:
            return parsedate_to_datetime(start_time).astimezone(UTC).strftime("%Y-%m-%d")
        except (TypeError, ValueError):
            pass
    return fallback.astimezone(UTC).strftime("%Y-%m-%d")


def media_key(prefix: str, date: str, account_sid: str, recording_sid: str, fmt: str) -> str:
    return f"{prefix}media/date={date}/{account_sid}/{recording_sid}.{fmt}"


def metadata_key(prefix: str, date: str, recording_sid: str) -> str:
    return f"{prefix}metadata/date={date}/{recording_sid}.json"


def event_key(prefix: str, date: str, recording_sid: str, status: str) -> str:
    return f"{prefix}events/date={date}/{recording_sid}-{status}.json"


def audit_key(prefix: str, recording_sid: str, action: str, when: datetime) -> str:
    stamp = when.strftime("%Y%m%dT%H%M%S.%fZ")
    return f"{prefix}audit/date={when:%Y-%m-%d}/{recording_sid}/{stamp}-{action}.json"


def metadata_document(recording: dict[str, Any], archive: dict[str, Any]) -> dict[str, Any]:
    """Every Recording resource field (null when Twilio omitted it) plus the archive facts."""
    document = {name: recording.get(name) for name in RECORDING_FIELDS}
    document.update(archive)
    document["pipeline_version"] = PIPELINE_VERSION
    return document


def retention_of(document: dict[str, Any]) -> Retention:
    """The Object Lock a recording's document records, for every later object of that recording."""
    until = document.get("retain_until")
    mode = document.get("retention_mode")
    return Retention(
        mode=mode if mode in ("COMPLIANCE", "GOVERNANCE") and until else None,
        until=datetime.fromisoformat(until) if until else None,
        legal_hold=bool(document.get("legal_hold")),
    )


def json_line(document: dict[str, Any]) -> bytes:
    """One JSON object on one line, as Athena and DuckDB read it."""
    return (json.dumps(document, separators=(",", ":"), sort_keys=True, default=str) + "\n").encode()


def s3_user_metadata(recording: dict[str, Any]) -> dict[str, str]:
    """The key facts as x-amz-meta-* (immutable; well under S3's 2 KB limit)."""
    facts = {
        "recording-sid": recording.get("sid"),
        "account-sid": recording.get("account_sid"),
        "call-sid": recording.get("call_sid"),
        "conference-sid": recording.get("conference_sid"),
        "duration": recording.get("duration"),
        "channels": recording.get("channels"),
        "source": recording.get("source"),
        "start-time": recording.get("start_time"),
        "pipeline": PIPELINE_VERSION,
    }
    # Header values must be ASCII; Twilio's values are, but never let one break the upload.
    return {k: str(v).encode("ascii", "replace").decode()[:256] for k, v in facts.items() if v is not None}
