"""Find recordings Twilio has that the archive lacks, and the callbacks that would archive them."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

from recvault.storage.base import ObjectStore
from recvault.workers.twilio_api import TwilioApi


def missing_recordings(
    twilio: TwilioApi, store: ObjectStore, prefix: str, account_sid: str, *, since: str, until: str | None,
) -> Iterator[dict[str, Any]]:
    """Completed recordings in the window whose metadata document is not in the archive."""
    from recvault.workers import documents as docs

    fallback = datetime.now(UTC)
    for recording in twilio.list_recordings(account_sid, created_after=since, created_before=until):
        if recording.get("status") != "completed":
            continue
        date = docs.recording_date(recording.get("start_time"), fallback)
        if store.head(docs.metadata_key(prefix, date, recording["sid"])) is None:
            yield recording


def callback_params(recording: dict, recording_url: str) -> dict[str, str]:
    """The callback Twilio would have sent for a recording found by listing."""
    params = {
        "AccountSid": recording["account_sid"], "RecordingSid": recording["sid"],
        "RecordingUrl": recording_url, "RecordingStatus": "completed",
        "RecordingDuration": str(recording.get("duration") or 0),
        "RecordingChannels": str(recording.get("channels") or 1),
        "RecordingSource": recording.get("source") or "", "RecordingStartTime": recording.get("start_time") or "",
        "CallSid": recording.get("call_sid") or "", "ConferenceSid": recording.get("conference_sid") or "",
        "ErrorCode": str(recording.get("error_code") or 0),
    }
    return {k: v for k, v in params.items() if v}
