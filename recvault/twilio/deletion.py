"""Deleting a recording at Twilio: only once its archived copy is verified against Twilio's facts.

Deletion is irreversible, so three things must hold first: the object in S3 is still the
one its metadata document describes (size and SHA-256 checksum), that object is the media
Twilio served for this recording (the document says how it was verified), and Twilio's
Recording resource, fetched again now, still describes the same recording: same SIDs,
completed, the duration and channel count the archived copy has.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from recvault import documents as docs
from recvault import layout
from recvault.audit.current_document import vouched_document
from recvault.audit.integrity import verify_archived
from recvault.audit.vouched import document_sha256
from recvault.audit.write import write_audit
from recvault.errors import IntegrityFailed, MediaNotReady
from recvault.storage.base import ObjectStore
from recvault.twilio.api import TwilioApi

# media_check values under which the archived audio was checked, or cannot be (mp3 and
# encrypted WAV have no header to read the duration from).
CHECKED = ("ok", "not-applicable")


def delete_blockers(document: dict[str, Any], recording: dict[str, Any]) -> list[str]:
    """Why this archived copy may not stand in for Twilio's (empty: it may). Pure."""
    blockers = []
    if recording.get("sid") != document.get("sid") or recording.get("account_sid") != document.get("account_sid"):
        blockers.append("Twilio's Recording resource names another recording")
    if recording.get("status") != "completed":
        blockers.append(f"Twilio reports status {recording.get('status')!r}, not completed")
    if str(recording.get("duration")) != str(document.get("duration")):
        blockers.append(f"duration at Twilio {recording.get('duration')} != archived {document.get('duration')}")
    check = str(document.get("media_check") or "missing")
    if check.split(":")[0] not in CHECKED:
        blockers.append(f"media check says {check}")
    if int(recording.get("channels") or 1) == 2 and document.get("requested_channels") != 2:
        blockers.append("a dual-channel original was archived as mono")
    if document.get("media_source") not in ("uploaded", "verified-against-twilio"):
        blockers.append("the archived media was not verified against the bytes Twilio served")
    return blockers


def may_delete_from_twilio(document: dict[str, Any]) -> bool:
    """Whether the policy let this recording be deleted at Twilio (documents older than the permission: yes)."""
    return document.get("delete_from_twilio") is not False


def delete_verified(twilio: TwilioApi, store: ObjectStore, account_sid: str, recording_sid: str, meta_key: str,
                    prefix: str, now: Callable[[], datetime]) -> None:
    """Delete the recording at Twilio after every check above; IntegrityFailed (Twilio copy kept) if any fails."""
    document = vouched_document(store, prefix, recording_sid, meta_key)
    if document.get("twilio_deleted_at"):
        return
    check = verify_archived(store, document)
    if check.media is None or check.problem is not None:
        raise IntegrityFailed(f"{document.get('media_key')}: {check.problem}; Twilio copy kept")
    url = twilio.recording_url(account_sid, recording_sid)
    try:
        recording = twilio.fetch_recording(url, account_sid)
    except MediaNotReady:
        recording = None  # 404: gone already, by an earlier attempt of this very step
    if recording is not None:
        blockers = delete_blockers(document, recording)
        if blockers:
            raise IntegrityFailed(f"{recording_sid}: {'; '.join(blockers)}; Twilio copy kept")
        try:
            twilio.delete_recording(url, account_sid)
        except MediaNotReady:
            pass
    document["twilio_deleted_at"] = now().isoformat()
    retention = docs.retention_of(document, now())
    store.put_bytes(meta_key, layout.json_line(document), content_type="application/json", create_only=False,
                    retention=retention, placement=docs.placement_of(document))
    write_audit(store, prefix, recording_sid, "deleted-from-twilio",
                {"media_key": document["media_key"], "verified_size": check.media.size,
                 "verified_sha256": document.get("media_sha256"), "document_sha256": document_sha256(document)},
                retention, now())
