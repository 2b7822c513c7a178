"""Twilio's JSON shapes: the Recording resource, list pages and error bodies."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, date, datetime
from email.utils import format_datetime
from urllib.parse import urlencode

from aiohttp import web

from recvault.simulator.recordings import SimRecording

API_VERSION = "2010-04-01"
# Twilio's list endpoints default to 50 items per page and cap PageSize at 1000.
DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 1000
# Twilio's error codes used by the simulator (https://www.twilio.com/docs/api/errors/<code>).
INVALID_PARAMETER = 20001
AUTHENTICATE = 20003
METHOD_NOT_ALLOWED = 20004
NOT_FOUND = 20404
TOO_MANY_REQUESTS = 20429
SERVICE_UNAVAILABLE = 20503
ENCRYPTED_MP3 = 16109  # encrypted recordings can only be fetched as WAV
NO_DUAL_VERSION = 16113  # a mono recording asked for as dual-channel


def rfc2822(moment: datetime | None) -> str | None:
    """Twilio's date format: 'Wed, 20 Apr 2022 23:45:25 +0000'."""
    return format_datetime(moment) if moment is not None else None


def recording_path(account_sid: str, sid: str) -> str:
    return f"/{API_VERSION}/Accounts/{account_sid}/Recordings/{sid}"


def recording_json(rec: SimRecording, api_base: str) -> dict:
    """The Recording resource with exactly Twilio's snake_case fields."""
    path = recording_path(rec.account_sid, rec.sid)
    return {
        "account_sid": rec.account_sid,
        "api_version": API_VERSION,
        "call_sid": rec.call_sid,
        "conference_sid": rec.conference_sid,
        "date_created": rfc2822(rec.date_created),
        "date_updated": rfc2822(rec.date_updated or rec.date_created),
        "start_time": rfc2822(rec.start_time),
        # Twilio reports -1 while a recording is still in progress; durations are strings.
        "duration": "-1" if rec.status == "in-progress" else str(rec.duration),
        "sid": rec.sid,
        "price": rec.price,
        "price_unit": rec.price_unit,
        "status": rec.status,
        "channels": rec.channels,
        "source": rec.source,
        "error_code": rec.error_code,
        "uri": path + ".json",
        "encryption_details": rec.encryption_details,
        "track": rec.track,
        "media_url": api_base + path,
        "subresource_uris": {
            "add_on_results": path + "/AddOnResults.json",
            "transcriptions": path + "/Transcriptions.json",
        },
    }


def error_response(status: int, code: int, message: str, headers: Mapping[str, str] | None = None) -> web.Response:
    """Twilio's error body: code, message, more_info, status."""
    body = {"code": code, "message": message,
            "more_info": f"https://www.twilio.com/docs/errors/{code}", "status": status}
    return web.json_response(body, status=status, headers=headers)


def parse_date_filter(value: str) -> date | datetime:
    """YYYY-MM-DD (compared by UTC day) or an ISO 8601 datetime."""
    if len(value) == 10:
        return date.fromisoformat(value)
    moment = datetime.fromisoformat(value)
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _matches(rec: SimRecording, op: str, bound: date | datetime) -> bool:
    created: date | datetime = rec.date_created
    if not isinstance(bound, datetime):
        created = rec.date_created.date()
    if op == ">":
        return created >= bound
    if op == "<":
        return created <= bound
    return created == bound


def filter_recordings(recordings: list[SimRecording], filters: dict[str, date | datetime]) -> list[SimRecording]:
    """Recordings matching DateCreated / DateCreated> / DateCreated<, newest first."""
    chosen = [r for r in recordings
              if all(_matches(r, key.removeprefix("DateCreated"), bound) for key, bound in filters.items())]
    return sorted(chosen, key=lambda r: (r.date_created, r.sid), reverse=True)


def list_page(
    items: list[SimRecording], *, account_sid: str, api_base: str, filters: dict[str, str],
    page: int, page_size: int, token: str | None, overlap: int = 0,
) -> dict:
    """One page in Twilio's list shape; PageToken 'PA'+sid continues after that recording.

    `overlap` makes a continued page start that many recordings early, repeating them.
    """
    start = page * page_size
    if token and token.startswith("PA"):
        after = token[2:]
        start = next((i + 1 for i, r in enumerate(items) if r.sid == after), len(items))
        start = max(0, start - min(overlap, page_size - 1))  # every page still moves on
    elif token and token.startswith("PB"):
        before = token[2:]
        end_index = next((i for i, r in enumerate(items) if r.sid == before), 0)
        start = max(0, end_index - page_size)
    chunk = items[start:start + page_size]
    base = f"/{API_VERSION}/Accounts/{account_sid}/Recordings.json"

    def uri(page_number: int, page_token: str | None) -> str:
        query = [*filters.items(), ("PageSize", str(page_size)), ("Page", str(page_number))]
        if page_token:
            query.append(("PageToken", page_token))
        return f"{base}?{urlencode(query)}"

    more = start + page_size < len(items)
    return {
        "recordings": [recording_json(r, api_base) for r in chunk],
        "page": page,
        "page_size": page_size,
        "start": start,
        "end": start + len(chunk) - 1 if chunk else start,
        "uri": uri(page, token),
        "first_page_uri": uri(0, None),
        "next_page_uri": uri(page + 1, "PA" + chunk[-1].sid) if more and chunk else None,
        "previous_page_uri": uri(page - 1, "PB" + chunk[0].sid) if page > 0 and chunk else None,
    }
