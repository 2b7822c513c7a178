"""HTTP handlers of the operations routes: the status page, the recordings API, its OpenAPI document."""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import quote

import redis
from aiohttp import web

from recvault import sids
from recvault.errors import RecvaultError
from recvault.ingest.context import INGEST
from recvault.ingest.ops.auth import COOKIE, LOGIN_SECONDS, Denied, Throttled, make_cookie, read_cookie
from recvault.ingest.ops.context import Operations
from recvault.ingest.ops.openapi import openapi_document
from recvault.ingest.ops.status_page import render_login, render_status
from recvault.ops.entries import Entry
from recvault.ops.query import BadQuery, RecordingQuery, day_parameter
from recvault.ops.recordings import Caller, MediaUnavailable, Records

log = logging.getLogger("recvault.ops")

OpsHandler = Callable[[web.Request, Operations, Caller], Awaitable[web.StreamResponse]]
# The page is inert: no script, nothing from elsewhere, not framed by other sites.
PAGE_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; "
                               "frame-ancestors 'none'; base-uri 'none'",
    "X-Content-Type-Options": "nosniff",
    "Cache-Control": "no-store",
    "Referrer-Policy": "no-referrer",
}
# The login form's fields are small; anything larger is not a person typing a token.
MAX_LOGIN_BYTES = 4096
# Where the sign-in form may send a person afterwards: an operator route of this service, nothing else.
_NEXT = re.compile(r"/(?:status|api/)[A-Za-z0-9/_.,=&?%-]{0,1000}")


def _error(status: int, reason: str, **headers: str) -> web.Response:
    return web.json_response({"error": reason}, status=status, headers=headers or None)


def _not_found() -> web.Response:
    # The same answer as a route that does not exist: with no token set, the routes are not there.
    return _error(404, "Not Found")


def _throttled(throttled: Throttled) -> web.Response:
    return _error(429, throttled.reason, **{"Retry-After": str(throttled.seconds)})


def _browser(request: web.Request) -> bool:
    """A person's browser (it asks for HTML) rather than a script."""
    return "text/html" in request.headers.get("Accept", "")


def _next_path(value: str) -> str:
    """Where to go after signing in: `value` when it is an operator route of this service, else the status page."""
    return value if _NEXT.fullmatch(value) and "//" not in value else "/status"


def _refused(request: web.Request, denied: Denied) -> web.Response:
    """401 with the reason; a browser that has no usable sign-in is sent to the sign-in form instead."""
    if denied.status != 401:
        return _error(denied.status, denied.reason)
    if request.method in ("GET", "HEAD") and "Authorization" not in request.headers and _browser(request):
        query = "" if request.path_qs == "/status" else f"?next={quote(_next_path(request.path_qs), safe='/')}"
        return web.Response(status=303, headers={"Location": f"/status/login{query}", "Cache-Control": "no-store"})
    return _error(401, denied.reason, **{"WWW-Authenticate": 'Bearer realm="recvault"'})


def operations(handler: OpsHandler) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    """The route exists only with RECVAULT_API_TOKEN set, and answers only its holder."""

    async def guarded(request: web.Request) -> web.StreamResponse:
        ctx = request.app[INGEST]
        token = ctx.settings.api_token.get_secret_value()
        if not token or ctx.ops is None:
            return _not_found()
        try:
            caller = ctx.ops.guard.caller(request)
        except Throttled as throttled:
            return _throttled(throttled)
        except Denied as denied:
            return _refused(request, denied)
        try:
            return await handler(request, ctx.ops, caller)
        except BadQuery as bad:
            return _error(400, str(bad))
        except RecvaultError as error:  # S3 unreachable or refusing: say so, never a 500
            log.warning("operations request failed", extra={"path": request.path, "error": str(error)})
            return _error(503, f"archive unavailable: {error}")

    return guarded


def _single(request: web.Request) -> dict[str, str]:
    """Query parameters, each at most once."""
    params: dict[str, str] = {}
    for name, value in request.query.items():
        if name in params:
            raise BadQuery(f"{name}: given more than once")
        params[name] = value
    return params


def _sid(request: web.Request) -> str:
    sid = request.match_info["sid"]
    if not sids.is_sid(sid, sids.RECORDING):
        raise BadQuery("RecordingSid must be 'RE' followed by 32 hex digits")
    return sid


def _day(request: web.Request) -> str | None:
    params = _single(request)
    unknown = sorted(set(params) - {"date"})
    if unknown:
        raise BadQuery(f"unknown parameter {unknown[0]!r}; known: date")
    return day_parameter(params["date"], "date") if "date" in params else None


def _links(sid: str, day: str | None) -> dict[str, str]:
    query = f"?date={day}" if day else ""
    return {"self": f"/api/recordings/{sid}{query}", "media": f"/api/recordings/{sid}/media{query}"}


def _item(entry: Entry) -> dict[str, Any]:
    return {**entry.to_json(), "links": _links(entry.sid, entry.date)}


# --- handlers ------------------------------------------------------------------------------
@operations
async def status_page(request: web.Request, ops: Operations, caller: Caller) -> web.StreamResponse:
    """The status page."""
    handoff = request.app[INGEST].handoff
    figures = await ops.run(ops.status.figures)
    html = render_status(figures, spool_depth=handoff.spool_depth, broker_up=handoff.broker_up, user=caller.user)
    return web.Response(text=html, content_type="text/html", headers=PAGE_HEADERS)


@operations
async def list_recordings(request: web.Request, ops: Operations, caller: Caller) -> web.StreamResponse:
    """A page of archived recordings matching the query."""
    query = RecordingQuery.parse(_single(request))
    page = await ops.run(ops.recordings.page, query)
    return web.json_response({"items": [_item(entry) for entry in page.items], "next_cursor": page.cursor,
                              "scanned": page.scanned})


@operations
async def get_recording(request: web.Request, ops: Operations, caller: Caller) -> web.StreamResponse:
    """What the archive holds for one recording."""
    sid, day = _sid(request), _day(request)
    records: Records = await ops.run(ops.recordings.records, sid, day)
    if not records.found:
        return _error(404, f"{sid} is not in the archive" + ("" if day else " (searched the last 400 days)"))
    body: dict[str, Any] = {
        "sid": sid, "date": records.day, "recording": records.document, "events": records.events,
        "audit": records.audit, "audit_days_skipped": records.audit_days_skipped, "links": _links(sid, records.day),
    }
    try:
        body["dead_letters"] = await ops.run(ops.broker.letters_of, sid)
    except redis.RedisError as error:
        body["dead_letters"], body["dead_letters_error"] = None, f"broker unreachable: {type(error).__name__}"
    return web.json_response(body)


@operations
async def recording_media(request: web.Request, ops: Operations, caller: Caller) -> web.StreamResponse:
    """302 to a presigned URL of the media, once an audit record says who asked."""
    sid, day = _sid(request), _day(request)
    if not request.app[INGEST].settings.media_playback:
        return _error(403, "media playback is turned off on this service (RECVAULT_MEDIA_PLAYBACK=false)")
    records: Records = await ops.run(ops.recordings.records_without_audit, sid, day)
    try:
        url = await ops.run(ops.recordings.media_link, records, caller)
    except MediaUnavailable as missing:
        return _error(404, str(missing))
    log.info("media link handed out", extra={"recording_sid": sid, "credential": caller.credential,
                                             "user": caller.user, "user_source": caller.user_source,
                                             "remote": caller.remote})
    return web.Response(status=302, headers={"Location": url, "Cache-Control": "no-store",
                                             "Referrer-Policy": "no-referrer"})


@operations
async def openapi(request: web.Request, ops: Operations, caller: Caller) -> web.StreamResponse:
    """This API's OpenAPI 3 document."""
    return web.json_response(openapi_document())


async def login_form(request: web.Request) -> web.StreamResponse:
    """The sign-in form (there only when the operations routes are)."""
    ops = request.app[INGEST].ops
    if not request.app[INGEST].settings.api_token.get_secret_value() or ops is None:
        return _not_found()
    return _login_page(request, ops, 200)


def _login_page(request: web.Request, ops: Operations, status: int, error: str | None = None,
                headers: dict[str, str] | None = None) -> web.Response:
    guard = ops.guard
    html = render_login(error=error, next_path=_next_path(request.query.get("next", "")),
                        proxy_header=guard.identity_header, identity=guard.named(request))
    return web.Response(status=status, text=html, content_type="text/html", headers={**PAGE_HEADERS, **(headers or {})})


async def login(request: web.Request) -> web.StreamResponse:
    """Check the token typed in; on success set the login cookie and go on (to the status page by default)."""
    ops = request.app[INGEST].ops
    if not request.app[INGEST].settings.api_token.get_secret_value() or ops is None:
        return _not_found()
    if request.content_length is None or request.content_length > MAX_LOGIN_BYTES:
        return _error(413, f"a sign-in form is at most {MAX_LOGIN_BYTES} bytes")
    form = await request.post()
    given, typed = str(form.get("token", "")), str(form.get("user", "")).strip()
    try:
        user = ops.guard.sign_in(request, given, typed)
    except Throttled as throttled:
        if _browser(request):
            return _login_page(request, ops, 429, throttled.reason, {"Retry-After": str(throttled.seconds)})
        return _throttled(throttled)
    except Denied as denied:
        return _login_page(request, ops, denied.status, denied.reason) if _browser(request) else \
            _error(denied.status, denied.reason)
    response = web.Response(status=303, headers={"Location": _next_path(str(form.get("next", ""))),
                                                 "Cache-Control": "no-store"})
    response.set_cookie(COOKIE, make_cookie(ops.guard.token, user, now=time.time()), max_age=LOGIN_SECONDS,
                        path="/", httponly=True, samesite="Strict", secure=ops.guard.over_tls(request) or None)
    return response


async def logout(request: web.Request) -> web.StreamResponse:
    """Sign out: clear the login cookie and go back to the sign-in form."""
    ops = request.app[INGEST].ops
    if not request.app[INGEST].settings.api_token.get_secret_value() or ops is None:
        return _not_found()
    cookie = request.cookies.get(COOKIE)
    user = read_cookie(cookie, ops.guard.token, now=time.time()) if cookie else None
    if user is not None:
        log.info("signed out", extra={"user": user or None, "remote": ops.guard.client(request).address})
    response = web.Response(status=303, headers={"Location": "/status/login", "Cache-Control": "no-store"})
    response.del_cookie(COOKIE, path="/", httponly=True, samesite="Strict", secure=ops.guard.over_tls(request) or None)
    return response


def add_routes(app: web.Application) -> None:
    """Register the operations routes (they answer 404 while RECVAULT_API_TOKEN is empty)."""
    app.router.add_get("/status", status_page)
    app.router.add_get("/status/login", login_form)
    app.router.add_post("/status/login", login)
    app.router.add_post("/status/logout", logout)
    app.router.add_get("/api/recordings", list_recordings)
    app.router.add_get("/api/recordings/{sid}", get_recording)
    app.router.add_get("/api/recordings/{sid}/media", recording_media)
    app.router.add_get("/api/openapi.json", openapi)
