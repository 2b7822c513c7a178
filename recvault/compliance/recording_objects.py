"""Finding an archived recording and every object it has: media, metadata, events, audit records.

Holds, erasure and purge act on "every object of a recording"; this is the one place that
says which objects those are. Every key is derived from `recvault.layout`, never taken from
a document: the media key from the day partition the document was found in, its account,
the RecordingSid and the media format; documents and events from the day and the RecordingSid;
audit records from the recording's chain. A document is data anyone with PutObject can
rewrite, so a document that names another recording's media must not make an erasure
delete it (`mismatch` says why a document is not to be acted on).
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from recvault import layout
from recvault.audit.append import read_chain_originals
from recvault.audit.chain import sha256_hex
from recvault.audit.vouched import document_hashes
from recvault.documents import CONTENT_TYPES, retention_of
from recvault.storage.base import ObjectStore, ObjectVersion, Retention


@dataclass
class Located:
    """One recording in the archive: its day, its metadata document (None for events only), its keys."""

    sid: str
    date: str
    document: dict[str, Any] | None
    # The keys that hold the recording itself: media, metadata document, event documents.
    keys: list[str] = field(default_factory=list)
    # The SHA-256 of the document's bytes as read (its current version).
    document_sha256: str | None = None

    @property
    def labels(self) -> dict[str, str]:
        found = (self.document or {}).get("labels") or {}
        return {str(k): str(v) for k, v in found.items()} if isinstance(found, dict) else {}


def partition_dates(store: ObjectStore, prefix: str, folder: str, *, date_from: str | None = None,
                    date_to: str | None = None) -> list[str]:
    """The days that have a `folder` partition (metadata/, events/, audit/) within the range, oldest first."""
    days = []
    for path in store.list_folders(f"{prefix}{folder}"):
        found = layout.PARTITION.search(path)
        if found and (date_from is None or found[1] >= date_from) and (date_to is None or found[1] <= date_to):
            days.append(found[1])
    return sorted(days)


def documents(store: ObjectStore, prefix: str, *, date_from: str | None = None,
              date_to: str | None = None) -> Iterator[Located]:
    """Every archived recording (one with a metadata document) in the date range, day by day."""
    for day in partition_dates(store, prefix, layout.METADATA, date_from=date_from, date_to=date_to):
        events: dict[str, list[str]] = {}  # one listing of the day's events, not one per recording
        for key in store.list_keys(layout.partition_prefix(prefix, layout.EVENTS, day)):
            parsed_event = layout.parse_event_key(prefix, key)
            if parsed_event is not None:
                events.setdefault(parsed_event[1], []).append(key)
        for key in store.list_keys(layout.partition_prefix(prefix, layout.METADATA, day)):
            parsed = layout.parse_metadata_key(prefix, key)
            if parsed is not None:
                yield _located(store, prefix, parsed[1], day, store.get_bytes(key), events.get(parsed[1], []))


def locate(store: ObjectStore, prefix: str, recording_sid: str, *, date: str | None = None) -> Located | None:
    """The recording with this RecordingSid (its archived document, else its event documents), or None."""
    days = [date] if date else partition_dates(store, prefix, layout.METADATA)[::-1]
    for day in days:
        key = layout.metadata_key(prefix, day, recording_sid)
        if store.head(key) is not None:
            return _located(store, prefix, recording_sid, day, store.get_bytes(key))
    for day in [date] if date else partition_dates(store, prefix, layout.EVENTS)[::-1]:
        events = list(store.list_keys(_events_prefix(prefix, day, recording_sid)))
        if events:
            return Located(recording_sid, day, None, events)
    return None


def _located(store: ObjectStore, prefix: str, sid: str, day: str, body: bytes,
             events: list[str] | None = None) -> Located:
    document = json.loads(body)
    media = derived_media_key(prefix, day, sid, document)
    keys = [media] if media else []
    keys.append(layout.metadata_key(prefix, day, sid))
    keys += store.list_keys(_events_prefix(prefix, day, sid)) if events is None else events
    return Located(sid, day, document, keys, sha256_hex(body))


def derived_media_key(prefix: str, day: str, sid: str, document: dict[str, Any]) -> str | None:
    """The media key the layout gives a recording archived on `day` with this document. Pure.

    None when the document names no media (nothing was archived) or lacks the account. The
    format is the document's `media_format`; a document written before it was recorded
    gives the extension of its own media key, which may only be one of the archive's formats.
    """
    named, account = document.get("media_key"), document.get("account_sid")
    if not named or not account:
        return None
    fmt = document.get("media_format") or str(named).rsplit(".", 1)[-1]
    return layout.media_key(prefix, day, str(account), sid, str(fmt)) if fmt in CONTENT_TYPES else None


def document_mismatch(located: Located, metadata_key: str, derived: str | None,
                      vouched: Sequence[str]) -> str | None:
    """Why this recording's document must not be acted on (its objects deleted), or None. Pure.

    `vouched`: the document hashes its audit chain records, oldest first (empty for a chain
    written before entries named them).
    """
    document = located.document or {}
    named = document.get("media_key")
    keys = f"the document at {metadata_key} names media key {named}; the layout gives {derived}"
    if document.get("sid") != located.sid:
        return f"{located.sid}: the document at {metadata_key} is recording {document.get('sid')}'s ({keys})"
    if named and named != derived:
        return f"{located.sid}: {keys}"
    # A chain written before document writes named their bytes has no hashes: then the key
    # derivation above is the only check there is.
    if vouched and located.document_sha256 != vouched[-1]:
        return (f"{located.sid}: the current version of {metadata_key} (SHA-256 {located.document_sha256}) is not "
                f"the one its audit chain last recorded ({vouched[-1]}); {keys}")
    return None


def mismatch(store: ObjectStore, prefix: str, located: Located) -> str | None:
    """Why the recording's document must not be acted on, or None (see document_mismatch)."""
    if located.document is None:
        return None  # events only: every key comes from the layout and the RecordingSid
    vouched = document_hashes(read_chain_originals(store, prefix, located.sid).trusted)
    return document_mismatch(located, layout.metadata_key(prefix, located.date, located.sid),
                             derived_media_key(prefix, located.date, located.sid, located.document), vouched)


def _events_prefix(prefix: str, day: str, sid: str) -> str:
    return f"{layout.partition_prefix(prefix, layout.EVENTS, day)}{sid}-"


def versions(store: ObjectStore, keys: list[str]) -> list[ObjectVersion]:
    """Every version and delete marker of exactly these keys."""
    wanted = set(keys)
    return [v for key in sorted(wanted) for v in store.list_versions(key) if v.key in wanted]


def audit_keys(store: ObjectStore, prefix: str, located: Located) -> list[str]:
    """The entries of the recording's audit chain."""
    return list(store.list_keys(layout.chain_prefix(prefix, located.sid)))


def audit_retention(document: dict[str, Any] | None, now: datetime) -> Retention | None:
    """The recording's lock for a new audit record of it; a retain-until already passed is left out
    (S3 refuses to set one in the past)."""
    retention = retention_of(document or {}, now)
    return retention if retention.until is not None or retention.legal_hold else None
