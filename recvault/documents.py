"""What the metadata documents say; where they are stored is `recvault.layout`."""

from __future__ import annotations

from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any

from recvault import __version__
from recvault.layout import retention_fields
from recvault.storage.base import Retention
from recvault.storage.placement import Placement
from recvault.versions import DOCUMENT_FIELD, DOCUMENT_VERSION

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


def metadata_document(recording: dict[str, Any], archive: dict[str, Any]) -> dict[str, Any]:
    """Every Recording resource field (null when Twilio omitted it) plus the archive facts.

    Its schema version (recvault.versions) says which release's shape it has: a rewrite keeps
    the version the document was written with, and a release never rewrites a newer one.
    """
    document = {name: recording.get(name) for name in RECORDING_FIELDS}
    document.update(archive)
    document["pipeline_version"] = PIPELINE_VERSION
    document[DOCUMENT_FIELD] = DOCUMENT_VERSION
    return document


def retention_of(document: dict[str, Any], now: datetime) -> Retention:
    """The Object Lock a recording's document records, for an object of that recording written `now`.

    A retain-until already passed is left out: S3 refuses to set one in the past, and a later
    version (a price filled in, a Twilio delete recorded) must still be writable then.
    """
    mode, until, legal_hold = retention_fields(document)
    if until is not None and until <= now:
        return Retention(legal_hold=legal_hold)
    return Retention(mode=mode, until=until, legal_hold=legal_hold)


def placement_of(document: dict[str, Any]) -> Placement:
    """The storage class and KMS key a document records, for rewriting it the same way."""
    return Placement(storage_class=document.get("storage_class"), kms_key_id=document.get("kms_key_id"))


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
