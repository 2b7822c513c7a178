"""Finding an archived recording and every object it has: media, metadata, events, audit records.

Holds, erasure and purge act on "every object of a recording"; this is the one place that
says which objects those are. Keys follow `recvault.layout`: the media key is the one the
metadata document names, documents and events sit in the recording's day partition, and
audit records in a folder per recording under each day an action happened.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from recvault import layout
from recvault.documents import retention_of
from recvault.storage.base import ObjectStore, ObjectVersion, Retention


@dataclass
class Located:
    """One recording in the archive: its day, its metadata document (None for events only), its keys."""

    sid: str
    date: str
    document: dict[str, Any] | None
    # The keys that hold the recording itself: media, metadata document, event documents.
    keys: list[str] = field(default_factory=list)

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
                yield _located(store, prefix, parsed[1], day, json.loads(store.get_bytes(key)),
                               events.get(parsed[1], []))


def locate(store: ObjectStore, prefix: str, recording_sid: str, *, date: str | None = None) -> Located | None:
    """The recording with this RecordingSid (its archived document, else its event documents), or None."""
    days = [date] if date else partition_dates(store, prefix, layout.METADATA)[::-1]
    for day in days:
        key = layout.metadata_key(prefix, day, recording_sid)
        if store.head(key) is not None:
            return _located(store, prefix, recording_sid, day, json.loads(store.get_bytes(key)))
    for day in [date] if date else partition_dates(store, prefix, layout.EVENTS)[::-1]:
        events = list(store.list_keys(_events_prefix(prefix, day, recording_sid)))
        if events:
            return Located(recording_sid, day, None, events)
    return None


def _located(store: ObjectStore, prefix: str, sid: str, day: str, document: dict[str, Any],
             events: list[str] | None = None) -> Located:
    keys = [str(document["media_key"])] if document.get("media_key") else []
    keys.append(layout.metadata_key(prefix, day, sid))
    keys += store.list_keys(_events_prefix(prefix, day, sid)) if events is None else events
    return Located(sid, day, document, keys)


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
