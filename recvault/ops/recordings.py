"""Recordings in the archive: pages of a filtered listing, one recording's records, its media link."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from recvault import layout
from recvault.audit.append import append, read_chain_originals
from recvault.audit.vouched import archived_entry
from recvault.ops.entries import Entry
from recvault.ops.query import FOLDERS, Position, RecordingQuery, encode_cursor
from recvault.ops.view import ArchiveView, Budget
from recvault.storage.base import Retention

# Days a lookup by RecordingSid alone searches, newest first; ?date= goes straight to the day.
SEARCH_DAYS = 400
# Audit entries read for one recording's history (its chain, oldest first).
AUDIT_RECORDS = 500
# Seconds a presigned media URL stays valid: long enough to start playing, short enough to be
# useless once copied elsewhere.
MEDIA_URL_SECONDS = 300
# Partition folders by listing folder name.
_FOLDER_PATHS = {"metadata": layout.METADATA, "events": layout.EVENTS}


@dataclass(frozen=True)
class Page:
    """One page of a listing; `cursor` continues it (None: nothing more)."""

    items: list[Entry]
    cursor: str | None
    scanned: int


@dataclass
class Records:
    """What the archive holds for one recording."""

    sid: str
    day: str | None = None
    document: dict[str, Any] | None = None
    document_key: str | None = None
    events: list[dict[str, Any]] = field(default_factory=list)
    audit: list[dict[str, Any]] = field(default_factory=list)
    # Kept for the API's shape: a chain is read in one listing, so no day is ever skipped.
    audit_days_skipped: int = 0

    @property
    def found(self) -> bool:
        return self.document is not None or bool(self.events)


# How a Caller's person was named: by the authenticating proxy in front (RECVAULT_IDENTITY_HEADER), or
# by the caller itself (the name typed at sign-in, or X-Recvault-User).
NAMED_BY_PROXY = "proxy"
NAMED_BY_CALLER = "declared"


@dataclass(frozen=True)
class Caller:
    """Who asked: the credential used, the person named and who named them, the address it came from."""

    credential: str
    user: str | None
    # The client's address: X-Forwarded-For's when forwarded headers are trusted, else the connection's.
    remote: str | None
    # NAMED_BY_PROXY or NAMED_BY_CALLER; None without a user.
    user_source: str | None = None
    # The connection's own address when `remote` came from X-Forwarded-For (the proxy in front).
    peer: str | None = None


class MediaUnavailable(Exception):
    """The recording has no archived media to play (only events, or no media key)."""


class RecordingsReader:
    """Listings, lookups and media links over one ArchiveView."""

    def __init__(self, view: ArchiveView) -> None:
        self.view = view

    # --- listing ------------------------------------------------------------------------
    def page(self, query: RecordingQuery, budget: Budget | None = None) -> Page:
        """Newest day first; within a day metadata documents, then event documents, in key order."""
        budget = budget or Budget()
        items: list[Entry] = []
        scanned = 0
        for day in self._days(query):
            for folder_index, folder in enumerate(FOLDERS):
                after = query.after
                if after is not None and (day, folder_index) < (after.date, after.folder) and day == after.date:
                    continue
                start = after.key if after is not None and (day, folder_index) == (after.date, after.folder) else None
                listed = [item for item in self.view.listing(_FOLDER_PATHS[folder], day)
                          if (start is None or item.key > start) and self._status_may_match(query, folder, item.key)]
                read, complete = self.view.entries(listed, budget)
                for item, entry in read:
                    scanned += 1
                    if entry is not None and query.matches(entry):
                        items.append(entry)
                    if len(items) == query.limit:
                        return self._page(items, query, Position(day, folder_index, item.key), scanned)
                if not complete:
                    last = read[-1][0].key if read else start
                    return self._page(items, query, Position(day, folder_index, last), scanned)
        return Page(items, None, scanned)

    def _days(self, query: RecordingQuery) -> list[str]:
        days = sorted(set(self.view.days(layout.METADATA)) | set(self.view.days(layout.EVENTS)), reverse=True)
        upper = query.after.date if query.after else query.date_to
        return [d for d in days if (upper is None or d <= upper) and (query.date_from is None or d >= query.date_from)]

    def _status_may_match(self, query: RecordingQuery, folder: str, key: str) -> bool:
        if folder == "metadata":
            return query.wants_status("completed")
        parsed = layout.parse_event_key(self.view.prefix, key)
        return parsed is not None and query.wants_status(parsed[2])

    @staticmethod
    def _page(items: list[Entry], query: RecordingQuery, position: Position, scanned: int) -> Page:
        return Page(items, encode_cursor(position, query.fingerprint()), scanned)

    # --- one recording --------------------------------------------------------------------
    def records(self, sid: str, day: str | None = None) -> Records:
        """The recording's metadata document, event documents and audit history."""
        records = self._locate(sid, day)
        if records.found:
            self._read_audit(records)
        return records

    def records_without_audit(self, sid: str, day: str | None = None) -> Records:
        """The recording's documents only (what a media link needs)."""
        return self._locate(sid, day)

    def _locate(self, sid: str, day: str | None) -> Records:
        hint = day or self.view.known_days.get(sid)
        if hint is not None:
            records = self._search(sid, _around(hint))
            if records.found or day is not None:
                return records
        days = sorted(set(self.view.days(layout.METADATA)) | set(self.view.days(layout.EVENTS)), reverse=True)
        return self._search(sid, days[:SEARCH_DAYS])

    def _search(self, sid: str, days: list[str]) -> Records:
        prefix = self.view.prefix

        def look(day: str) -> tuple[str, list[str]]:
            metadata = layout.metadata_key(prefix, day, sid)
            keys = [item.key for item in self.view.store.list_objects(metadata) if item.key == metadata]
            events = layout.partition_prefix(prefix, layout.EVENTS, day) + f"{sid}-"
            return day, keys + [item.key for item in self.view.store.list_objects(events)]

        records = Records(sid)
        for found_day, keys in sorted(self.view.pool.map(look, days), reverse=True):
            for key in keys:
                document = self.view.document(key)
                if document is None:
                    continue
                if key.endswith(f"{sid}.json") and records.document is None:
                    records.document, records.document_key, records.day = document, key, found_day
                else:
                    records.events.append(document)
                    records.day = records.day or found_day
        if records.day:
            self.view.known_days.put(sid, records.day)
        return records

    def _read_audit(self, records: Records) -> None:
        """The recording's audit chain, oldest first: one listing, then its entries."""
        folder = layout.chain_prefix(self.view.prefix, records.sid)
        found = [item.key for item in self.view.store.list_objects(folder)][:AUDIT_RECORDS]

        def flat(key: str) -> dict[str, Any] | None:
            entry = self.view.document(key)
            if entry is None:
                return None
            raw = entry.get("details")
            details: dict[str, Any] = raw if isinstance(raw, dict) else {}
            return {**details, "recording_sid": records.sid, "seq": entry.get("seq"), "at": entry.get("at"),
                    "actor": entry.get("actor"), "action": entry.get("action")}

        records.audit = [doc for doc in self.view.pool.map(flat, found) if doc is not None]

    # --- media ------------------------------------------------------------------------
    def media_link(self, records: Records, caller: Caller) -> str:
        """A short-lived presigned URL of the archived media, after recording who asked for it.

        The audit record is written first and create-only: a link is never handed out unrecorded.
        The link is to the media version the recording's `archived` entry recorded, read at its
        original version: a document or media version stacked later by someone else is never served.
        """
        document = records.document
        archived = archived_entry(read_chain_originals(self.view.store, self.view.prefix, records.sid).trusted)
        if document is None or archived is None or not isinstance(archived.details.get("media_key"), str):
            raise MediaUnavailable(f"{records.sid} has no archived media")
        now = self.view.clock()
        key = archived.details["media_key"]
        # Entries written before they named the version: the document's, as it was then.
        version = archived.details.get("media_version_id") or document.get("media_version_id")
        details = {"media_key": key, "media_version_id": version, "credential": caller.credential,
                   "user": caller.user, "user_source": caller.user_source, "remote": caller.remote,
                   "peer": caller.peer, "url_seconds": MEDIA_URL_SECONDS,
                   "url_expires_at": (now + timedelta(seconds=MEDIA_URL_SECONDS)).isoformat()}
        actor = f"{caller.user} ({caller.credential})" if caller.user else caller.credential
        append(self.view.store, self.view.prefix, records.sid, "media-accessed", details,
               _retention(document, now), now, actor=actor)
        return self.view.store.presigned_get(key, version_id=version if isinstance(version, str) else None,
                                             expires_seconds=MEDIA_URL_SECONDS, filename=key.rsplit("/", 1)[-1])


def _around(day: str) -> list[str]:
    """The day and its neighbours: a callback's start date and Twilio's may straddle midnight."""
    moment = datetime.fromisoformat(day)
    return [(moment + timedelta(days=delta)).strftime("%Y-%m-%d") for delta in (1, 0, -1)]


def _retention(document: dict[str, Any], now: datetime) -> Retention:
    """The recording's lock for its audit record; a lock already ended leaves only a legal hold."""
    mode, until, legal_hold = layout.retention_fields(document)
    if until is not None and until.tzinfo is None:
        until = until.replace(tzinfo=UTC)
    if mode is None or until is None or until <= now:
        return Retention(legal_hold=legal_hold)
    return Retention(mode=mode, until=until, legal_hold=legal_hold)
