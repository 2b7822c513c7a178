"""A query of /api/recordings: filters, page size and cursor, checked before anything is read."""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

from recvault import sids
from recvault.days import parse_day
from recvault.ops.entries import COMPLETED, Entry

# Items per page: the default, and the most one request may ask for.
DEFAULT_LIMIT = 50
MAX_LIMIT = 200
# Listings walk each day's metadata documents, then its event documents.
FOLDERS = ("metadata", "events")
# Statuses listed when the query names none: the outcomes (in-progress precedes nearly every one).
DEFAULT_STATUSES = frozenset({COMPLETED, "absent", "failed"})
PARAMETERS = ("from", "to", "account", "call", "source", "status", "tag", "label", "rule", "limit", "cursor")
CURSOR_VERSION = 1
_STATUS = re.compile(r"[a-z-]{1,32}")
_WORD = re.compile(r"[\x21-\x7e ]{1,256}")


class BadQuery(ValueError):
    """A parameter that cannot be used; the message names it (answered 400)."""


@dataclass(frozen=True)
class Position:
    """Where a listing stopped: a day, a folder of it, and the last key looked at (None: its start)."""

    date: str
    folder: int
    key: str | None


@dataclass(frozen=True)
class RecordingQuery:
    """Filters of a listing; every one given must match."""

    date_from: str | None = None
    date_to: str | None = None
    account: str | None = None
    call: str | None = None
    source: str | None = None
    statuses: frozenset[str] = DEFAULT_STATUSES
    tag: tuple[str, str | None] | None = None
    label: tuple[str, str | None] | None = None
    rule: str | None = None
    limit: int = DEFAULT_LIMIT
    after: Position | None = None

    @classmethod
    def parse(cls, params: Mapping[str, str]) -> RecordingQuery:
        """The query that URL parameters ask for; BadQuery naming the first unusable one."""
        unknown = sorted(set(params) - set(PARAMETERS))
        if unknown:
            raise BadQuery(f"unknown parameter {unknown[0]!r}; known: {', '.join(PARAMETERS)}")
        date_from, date_to = _date(params, "from"), _date(params, "to")
        if date_from and date_to and date_from > date_to:
            raise BadQuery(f"from ({date_from}) is after to ({date_to})")
        query = cls(
            date_from=date_from,
            date_to=date_to,
            account=_sid(params, "account", sids.ACCOUNT),
            call=_sid(params, "call", sids.CALL),
            source=_word(params, "source"),
            statuses=_statuses(params.get("status")),
            tag=_label(params.get("tag"), "tag"),
            label=_label(params.get("label"), "label"),
            rule=_word(params, "rule"),
            limit=_limit(params.get("limit")),
        )
        cursor = params.get("cursor")
        return query if not cursor else query.with_after(decode_cursor(cursor, query.fingerprint()))

    def with_after(self, after: Position) -> RecordingQuery:
        if (self.date_from and after.date < self.date_from) or (self.date_to and after.date > self.date_to):
            raise BadQuery("cursor: outside the from/to range")
        return replace(self, after=after)

    def fingerprint(self) -> str:
        """What a cursor is tied to: the filters (not the page size, not the position)."""
        filters = [self.date_from, self.date_to, self.account, self.call, self.source, sorted(self.statuses),
                   self.tag, self.label, self.rule]
        return hashlib.sha256(json.dumps(filters).encode()).hexdigest()[:16]

    def wants_status(self, status: str) -> bool:
        return status in self.statuses

    def matches(self, entry: Entry) -> bool:
        """Whether an entry passes every filter (dates and status are applied from keys, earlier)."""
        if self.account and entry.account_sid != self.account:
            return False
        if self.call and entry.call_sid != self.call:
            return False
        if self.source and entry.source != self.source:
            return False
        if self.rule and entry.rule != self.rule:
            return False
        for wanted, found in ((self.tag, entry.tags), (self.label, entry.labels)):
            if wanted:
                name, value = wanted
                if name not in found or (value is not None and found[name] != value):
                    return False
        return self.wants_status(entry.status)


def encode_cursor(position: Position, fingerprint: str) -> str:
    raw = json.dumps({"v": CURSOR_VERSION, "d": position.date, "f": position.folder, "k": position.key,
                      "q": fingerprint}, separators=(",", ":"))
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def decode_cursor(cursor: str, fingerprint: str) -> Position:
    """The position a cursor names; BadQuery when it is not one this service made for these filters."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        data: Any = json.loads(raw)
    except (binascii.Error, ValueError):
        raise BadQuery("cursor: not a cursor this service returned") from None
    if not isinstance(data, dict) or data.get("v") != CURSOR_VERSION:
        raise BadQuery("cursor: not a cursor this service returned")
    if data.get("q") != fingerprint:
        raise BadQuery("cursor: made for other filters; repeat the query that returned it")
    day, folder, key = data.get("d"), data.get("f"), data.get("k")
    if not isinstance(day, str) or not _is_day(day) or not isinstance(folder, int) \
            or folder not in range(len(FOLDERS)) or not (key is None or isinstance(key, str) and len(key) <= 1024):
        raise BadQuery("cursor: not a cursor this service returned")
    return Position(day, folder, key)


def day_parameter(value: str, name: str) -> str:
    """`value` when it is a day written YYYY-MM-DD (recvault.days.parse_day); BadQuery naming `name` otherwise."""
    try:
        return parse_day(value).isoformat()
    except ValueError as error:
        raise BadQuery(f"{name}: {error}") from None


def _is_day(value: str) -> bool:
    try:
        parse_day(value)
    except ValueError:
        return False
    return True


def _date(params: Mapping[str, str], name: str) -> str | None:
    value = params.get(name)
    return None if value is None else day_parameter(value, name)


def _sid(params: Mapping[str, str], name: str, prefix: str) -> str | None:
    value = params.get(name)
    if value is not None and not sids.is_sid(value, prefix):
        raise BadQuery(f"{name}: must be '{prefix}' followed by 32 hex digits")
    return value


def _word(params: Mapping[str, str], name: str) -> str | None:
    value = params.get(name)
    if value is not None and not _WORD.fullmatch(value):
        raise BadQuery(f"{name}: 1 to 256 printable characters")
    return value


def _statuses(value: str | None) -> frozenset[str]:
    if value is None:
        return DEFAULT_STATUSES
    statuses = frozenset(part.strip() for part in value.split(",") if part.strip())
    if not statuses or not all(_STATUS.fullmatch(s) for s in statuses):
        raise BadQuery("status: comma-separated Twilio statuses, e.g. completed,absent,failed")
    return statuses


def _label(value: str | None, parameter: str) -> tuple[str, str | None] | None:
    if value is None:
        return None
    name, sep, wanted = value.partition("=")
    if not name or not _WORD.fullmatch(name) or (sep and not _WORD.fullmatch(wanted)):
        raise BadQuery(f"{parameter}: a {parameter} name, or name=value")
    return name, wanted if sep else None


def _limit(value: str | None) -> int:
    if value is None:
        return DEFAULT_LIMIT
    if not value.isdigit() or not 1 <= int(value) <= MAX_LIMIT:
        raise BadQuery(f"limit: a whole number from 1 to {MAX_LIMIT}")
    return int(value)
