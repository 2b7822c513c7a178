"""Filling in what Twilio did not know at completion (the price), then any delayed Twilio delete."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from recvault import documents as docs
from recvault import layout, sids
from recvault.audit.current_document import vouched_document
from recvault.audit.vouched import document_sha256
from recvault.audit.write import write_audit
from recvault.days import parse_day
from recvault.errors import PermanentError
from recvault.storage.base import ObjectStore
from recvault.twilio.api import TwilioApi
from recvault.twilio.deletion import delete_verified, may_delete_from_twilio
from recvault.versions import MESSAGE_FIELD, MESSAGE_VERSION, check_document


def _partition_date(meta_key: str) -> str | None:
    """The partition date a metadata document's key carries, whatever the bucket prefix before it."""
    at = meta_key.rfind(layout.METADATA + "date=")
    parsed = layout.parse_metadata_key(meta_key[:at], meta_key) if at >= 0 else None
    return parsed[0] if parsed else None


class InvalidRefresh(PermanentError):
    """A refresh message whose SIDs or date are malformed; nothing is fetched or deleted for it."""


@dataclass(frozen=True)
class RefreshTarget:
    """The one recording a refresh message is about; every URL and key is derived from it."""

    account_sid: str
    recording_sid: str
    date: str

    @classmethod
    def from_payload(cls, payload: dict[str, Any]) -> RefreshTarget:
        account, recording = payload.get("account_sid"), payload.get("recording_sid")
        if not sids.is_sid(account, sids.ACCOUNT) or not sids.is_sid(recording, sids.RECORDING):
            raise InvalidRefresh(f"refresh names no valid AccountSid and RecordingSid: {account!r}, {recording!r}")
        date = payload.get("date")
        # Messages queued by earlier versions name the document's key instead of the date.
        if date is None and isinstance(payload.get("metadata_key"), str):
            date = _partition_date(payload["metadata_key"])
        try:
            parse_day(date if isinstance(date, str) else "")
        except ValueError:
            raise InvalidRefresh(f"refresh of {recording} names no partition date") from None
        assert isinstance(date, str)
        assert isinstance(account, str) and isinstance(recording, str)  # checked by is_sid
        return cls(account, recording, date)

    @classmethod
    def for_document(cls, account_sid: str, recording_sid: str, meta_key: str) -> RefreshTarget:
        """The target of the document at `meta_key` (its key carries the date)."""
        return cls.from_payload({"account_sid": account_sid, "recording_sid": recording_sid,
                                 "metadata_key": meta_key})

    def payload(self, attempt: int) -> dict[str, Any]:
        return {MESSAGE_FIELD: MESSAGE_VERSION, "account_sid": self.account_sid, "recording_sid": self.recording_sid,
                "date": self.date, "attempt": attempt}


def refresh_recording(target: RefreshTarget, *, twilio: TwilioApi, store: ObjectStore, prefix: str,
                      delete_after_archive: bool, now: Callable[[], datetime], final: bool = False) -> bool:
    """Fill in a price Twilio did not know at completion; True when nothing is left to do.

    A document of a newer schema than this release writes is not rewritten: NewerVersion, and the
    delivery policy hands the message back for a newer worker.
    """
    meta_key = layout.metadata_key(prefix, target.date, target.recording_sid)
    if store.head(meta_key) is None:
        raise InvalidRefresh(f"{target.recording_sid} has no metadata document at {meta_key}")
    # A newer release's schema first: that document is a newer worker's to rewrite (and to vouch for
    # with entries this release may not know), so the message goes back to one, whatever else.
    check_document(json.loads(store.get_bytes(meta_key)), meta_key)
    document = vouched_document(store, prefix, target.recording_sid, meta_key)
    if document.get("sid") != target.recording_sid or document.get("account_sid") != target.account_sid:
        raise InvalidRefresh(f"{meta_key} does not describe {target.recording_sid} of {target.account_sid}")
    if document.get("price") is None:
        url = twilio.recording_url(target.account_sid, target.recording_sid)
        recording = twilio.fetch_recording(url, target.account_sid)
        if recording.get("price") is None and not final:
            return False
        if recording.get("price") is not None:
            retention = docs.retention_of(document, now())
            document.update({key: recording.get(key) for key in ("price", "price_unit", "date_updated")})
            document["price_updated_at"] = now().isoformat()
            store.put_bytes(meta_key, layout.json_line(document), content_type="application/json",
                            create_only=False, retention=retention, placement=docs.placement_of(document))
            write_audit(store, prefix, target.recording_sid, "price-updated",
                        {"price": document["price"], "price_unit": document["price_unit"],
                         "document_sha256": document_sha256(document)}, retention, now())
    if delete_after_archive and may_delete_from_twilio(document) and not document.get("twilio_deleted_at"):
        delete_verified(twilio, store, target.account_sid, target.recording_sid, meta_key, prefix, now)
    return True
