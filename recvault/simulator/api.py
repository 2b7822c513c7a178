"""Twilio's Recording endpoints: resource, list, delete and media, behind HTTP Basic auth."""

from __future__ import annotations

import asyncio
import binascii
import re
import time
from base64 import b64decode

from aiohttp import web
from aiohttp.typedefs import Handler

from recvault import sids
from recvault.simulator import resources as res
from recvault.simulator.context import PUBLIC_BASE, STATE, api_base
from recvault.simulator.control import add_control_routes
from recvault.simulator.media import CONTENT_TYPES, iter_media, media_size
from recvault.simulator.recordings import LoggedRequest, SimRecording, SimState

PREFIX = f"/{res.API_VERSION}/Accounts/{{account}}"
RECORDING_NAME = re.compile(rf"^(?P<sid>{sids.sid_pattern(sids.RECORDING)})(?:\.(?P<ext>json|wav|mp3))?$")
DATE_FILTERS = ("DateCreated", "DateCreated>", "DateCreated<")


def _credentials(request: web.Request) -> tuple[str, str] | None:
    header = request.headers.get("Authorization", "")
    scheme, _, encoded = header.partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        username, sep, password = b64decode(encoded, validate=True).decode().partition(":")
    except (binascii.Error, UnicodeDecodeError):
        return None
    return (username, password) if sep else None


@web.middleware
async def twilio_auth(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Enforce HTTP Basic auth on the Twilio API and log every request (never the secret)."""
    if request.path.startswith("/_sim/"):
        return await handler(request)
    state = request.app[STATE]
    credentials = _credentials(request)
    principal = state.authenticate(*credentials) if credentials else None
    auth = "none" if credentials is None else ("valid" if principal else "invalid")
    account = request.match_info.get("account")
    if principal is None:
        # Twilio error 20003: missing or wrong credentials.
        response: web.StreamResponse = res.error_response(
            401, res.AUTHENTICATE, "Authenticate", {"WWW-Authenticate": 'Basic realm="Twilio API"'})
    elif account and not state.may_access(principal, account):
        # Valid credentials of another account: Twilio refuses them (error 20003).
        response = res.error_response(403, res.AUTHENTICATE, "Authenticate")
    else:
        try:
            response = await handler(request)
        except web.HTTPException as error:  # unknown path or method: Twilio's JSON error shape
            code = {404: res.NOT_FOUND, 405: res.METHOD_NOT_ALLOWED}.get(error.status, error.status)
            response = res.error_response(error.status, code, error.reason)
    state.log(LoggedRequest(request.method, request.path, request.query_string, auth,
                            credentials[0] if principal and credentials else None,
                            response.status, time.time()))
    return response


def _not_found(request: web.Request) -> web.Response:
    return res.error_response(
        404, res.NOT_FOUND, f"The requested resource {request.path} was not found")


def _lookup(request: web.Request) -> tuple[SimRecording | None, str | None]:
    match = RECORDING_NAME.match(request.match_info["name"])
    if not match:
        return None, None
    rec = request.app[STATE].get(match["sid"])
    if rec is None or rec.account_sid != request.match_info["account"] or rec.hidden:
        return None, match["ext"]
    return rec, match["ext"] or "wav"


async def _first_byte(rec: SimRecording) -> None:
    """The time an answer takes to start: Twilio is an internet round trip away, not on loopback."""
    if rec.faults.first_byte_seconds > 0:
        await asyncio.sleep(rec.faults.first_byte_seconds)


async def get_recording(request: web.Request) -> web.StreamResponse:
    rec, ext = _lookup(request)
    if rec is None or ext is None:  # a recording found always comes with its extension
        return _not_found(request)
    await _first_byte(rec)
    if ext == "json":
        return web.json_response(res.recording_json(rec, api_base(request)))
    return await stream_media(request, rec, ext)


async def delete_recording(request: web.Request) -> web.Response:
    rec, ext = _lookup(request)
    if rec is None or ext != "json":
        return _not_found(request)
    await _first_byte(rec)
    if rec.status != "completed":
        return res.error_response(
            400, res.INVALID_PARAMETER, f"Cannot delete a recording whose status is {rec.status}")
    rec.deleted = True
    return web.Response(status=204)


async def list_recordings(request: web.Request) -> web.Response:
    query = request.query
    try:
        filters = {key: res.parse_date_filter(query[key]) for key in DATE_FILTERS if key in query}
        page_size = int(query.get("PageSize", res.DEFAULT_PAGE_SIZE))
        page = int(query.get("Page", 0))
        if not 1 <= page_size <= res.MAX_PAGE_SIZE or page < 0:
            raise ValueError("PageSize or Page out of range")
    except ValueError as error:
        return res.error_response(400, res.INVALID_PARAMETER, f"Invalid parameter: {error}")
    account = request.match_info["account"]
    state = request.app[STATE]
    mine = [r for r in list(state.recordings.values()) if r.account_sid == account and not r.hidden]
    body = res.list_page(
        res.filter_recordings(mine, filters), account_sid=account, api_base=api_base(request),
        filters={key: query[key] for key in DATE_FILTERS if key in query},
        page=page, page_size=page_size, token=query.get("PageToken"), overlap=state.list_page_overlap,
    )
    return web.json_response(body)


def _media_refusal(request: web.Request, rec: SimRecording, ext: str) -> tuple[web.Response | None, int]:
    """A 4xx/5xx the media request must get instead of the file, else the channels to serve."""
    if not rec.has_media:
        return _not_found(request), 0
    if rec.encrypted and ext == "mp3":
        return res.error_response(
            400, res.ENCRYPTED_MP3, "Encrypted recordings can only be fetched as WAV"), 0
    raw = request.query.get("RequestedChannels")
    requested = int(raw) if raw in ("1", "2") else (None if raw is None else 0)
    channels = rec.served_channels(requested)
    if channels is None:
        # Twilio answers 400 when the requested channel layout does not exist: 16113 for a
        # dual-channel download of a mono recording, an invalid parameter otherwise.
        code = res.NO_DUAL_VERSION if requested == 2 else res.INVALID_PARAMETER
        return res.error_response(400, code, f"RequestedChannels={raw} is not available for {rec.sid}"), 0
    faults = rec.faults
    if faults.invalid_request:
        return res.error_response(400, res.INVALID_PARAMETER, "Invalid request"), 0
    if faults.redirect_to is not None:
        return web.Response(status=302, headers={"Location": faults.redirect_to}), 0
    if faults.rate_limited > 0:
        faults.rate_limited -= 1
        return res.error_response(429, res.TOO_MANY_REQUESTS, "Too Many Requests",
                                  {"Retry-After": str(faults.retry_after_seconds)}), 0
    if faults.server_errors > 0:
        faults.server_errors -= 1
        return res.error_response(503, res.SERVICE_UNAVAILABLE, "Service Unavailable"), 0
    return None, channels


async def stream_media(request: web.Request, rec: SimRecording, ext: str) -> web.StreamResponse:
    """The media file, streamed in constant memory, with the recording's faults applied."""
    rec.media_requests += 1
    refusal, channels = _media_refusal(request, rec, ext)
    if refusal is not None:
        return refusal
    faults = rec.faults
    size = media_size(rec.sid, ext, channels, rec.media_duration)
    limit = size
    response = web.StreamResponse(headers={"Content-Type": CONTENT_TYPES[ext]})
    response.content_length = size
    if request.method == "HEAD":
        await response.prepare(request)
        return response
    if faults.cut_times > 0 and faults.cut_after_bytes is not None:
        faults.cut_times -= 1
        limit = min(size, faults.cut_after_bytes)
        response.force_close()
    elif faults.wrong_length_times > 0:
        faults.wrong_length_times -= 1
        response.content_length = size + max(1024, size // 10)
        response.force_close()
    await response.prepare(request)
    if faults.slow_seconds:
        await asyncio.sleep(faults.slow_seconds)
    sent = 0
    started = time.monotonic()
    for chunk in iter_media(rec.sid, ext, channels, rec.media_duration):
        if sent + len(chunk) > limit:
            chunk = chunk[: limit - sent]
        await response.write(chunk)
        sent += len(chunk)
        if faults.bytes_per_second:
            # Hold each chunk back until the stream is no faster than its bandwidth.
            ahead = sent / faults.bytes_per_second - (time.monotonic() - started)
            if ahead > 0:
                await asyncio.sleep(ahead)
        if sent >= limit:
            break
    if limit < size:
        return response  # the connection closes with the body cut short
    await response.write_eof()
    return response


def add_twilio_routes(app: web.Application) -> None:
    app.router.add_get(f"{PREFIX}/Recordings.json", list_recordings)
    app.router.add_get(f"{PREFIX}/Recordings/{{name}}", get_recording)
    app.router.add_delete(f"{PREFIX}/Recordings/{{name}}", delete_recording)


def create_sim_app(state: SimState, *, public_base_url: str = "") -> web.Application:
    """The simulated Twilio API plus the /_sim/ control API, serving `state`."""
    app = web.Application(middlewares=[twilio_auth])
    app[STATE] = state
    app[PUBLIC_BASE] = public_base_url.rstrip("/")
    add_twilio_routes(app)
    add_control_routes(app)
    return app
