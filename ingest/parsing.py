"""Reading a callback's parameters off the wire within ingest's limits; each refusal says why."""

from __future__ import annotations

import asyncio
import json
from urllib.parse import unquote

from aiohttp import web
from multidict import MultiDict

from recvault.ingest.limits import BODY_READ_SECONDS, MAX_PARAMETERS
from recvault.ingest.signature import VISIBLE_ASCII


class Rejected(Exception):
    """A callback refused with an HTTP status and a reason the caller can read."""

    def __init__(self, status: int, reason: str, label: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason
        self.label = label


async def read_body(request: web.Request, max_bytes: int) -> bytes:
    """The whole body; 413 past `max_bytes` (announced or received), 408 when it comes too slowly."""
    too_large = Rejected(413, f"body larger than {max_bytes} bytes", "too_large")
    if request.content_length is not None and request.content_length > max_bytes:
        raise too_large  # refused on its Content-Length, before a byte of it is read
    try:
        if request.content.is_eof():  # the whole body came with the headers: nothing to wait for
            return await request.read()
        async with asyncio.timeout(BODY_READ_SECONDS):
            return await request.read()
    except TimeoutError:
        raise Rejected(408, f"body not received within {BODY_READ_SECONDS:g} seconds", "timeout") from None
    except web.HTTPRequestEntityTooLarge:
        raise too_large from None


def parse_form(raw: bytes | str, *, too_many: int) -> MultiDict[str]:
    """Form-encoded parameters; more than MAX_PARAMETERS are refused with `too_many` before parsing."""
    separators = raw.count(b"&") if isinstance(raw, bytes) else raw.count("&")
    if separators >= MAX_PARAMETERS:  # n separators delimit at most n + 1 parameters
        raise Rejected(too_many, f"more than {MAX_PARAMETERS} parameters (Twilio sends about 20)",
                       "too_many_parameters")
    try:
        pairs = [(_unquote_plus(name), _unquote_plus(value))
                 for name, _, value in (field.partition("=") for field in decode(raw).split("&") if field)]
    except (UnicodeDecodeError, ValueError):
        raise Rejected(400, "parameters are not valid UTF-8 form encoding", "invalid") from None
    return MultiDict(pairs)


def _unquote_plus(text: str) -> str:
    """What `parse_qsl(..., keep_blank_values=True, errors="strict")` makes of one name or value.

    Written out rather than calling parse_qsl: Twilio's values are mostly plain, and skipping
    the work for them halves form parsing, which runs for every callback.
    """
    if "+" in text:
        text = text.replace("+", " ")
    return unquote(text, errors="strict") if "%" in text else text


def parse_json_object(text: str) -> MultiDict[str]:
    """A JSON object's members as parameters; nested values stay JSON text."""
    try:
        data = json.loads(text)
    except (ValueError, RecursionError):  # RecursionError: nesting deeper than Python's stack
        raise Rejected(400, "body is not valid JSON", "invalid") from None
    if not isinstance(data, dict):
        raise Rejected(400, "JSON body must be an object", "invalid")
    return MultiDict((str(k), v if isinstance(v, str) else json.dumps(v)) for k, v in data.items())


def decode(raw: bytes | str) -> str:
    """UTF-8 text, or a 400 saying it is not."""
    if isinstance(raw, str):
        return raw
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        raise Rejected(400, "body is not valid UTF-8", "invalid") from None


def informational(value: str | None) -> str | None:
    """An unsigned header kept only for the record, or None when it is not printable ASCII."""
    return value if value is not None and VISIBLE_ASCII.fullmatch(value) else None
