"""The /_sim/ control API (no auth): create and inspect recordings, read the request log, reset."""

from __future__ import annotations

import asyncio
from dataclasses import asdict, fields
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any

from aiohttp import web

from recvault.simulator.context import STATE, api_base
from recvault.simulator.media import FORMATS, media_sha256, media_size
from recvault.simulator.recordings import Faults, SimRecording, SimState
from recvault.simulator.resources import recording_json

FAULT_FIELDS = {f.name for f in fields(Faults)}
RECORDING_FIELDS = {f.name for f in fields(SimRecording)} - {"created_monotonic", "media_requests"}
DATE_FIELDS = ("start_time", "date_created", "date_updated")


class BadRequest(ValueError):
    """The control request's JSON does not describe a recording."""


def _parse_date(value: object) -> datetime:
    if isinstance(value, str):
        try:
            moment = datetime.fromisoformat(value)
        except ValueError:
            moment = parsedate_to_datetime(value)
        return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
    raise BadRequest(f"dates are ISO 8601 or RFC 2822 strings, not {value!r}")


def recording_values(data: object) -> dict[str, Any]:
    """Keyword arguments for SimRecording from control JSON; fault names may sit at top level."""
    if not isinstance(data, dict):
        raise BadRequest("each recording is a JSON object")
    faults = dict(data.get("faults") or {})
    values: dict[str, Any] = {}
    for key, value in data.items():
        if key in FAULT_FIELDS:
            faults[key] = value
        elif key in DATE_FIELDS and value is not None:
            values[key] = _parse_date(value)
        elif key in RECORDING_FIELDS - {"faults"}:
            values[key] = value
        elif key != "faults":
            raise BadRequest(f"unknown field {key!r}")
    values["faults"] = faults
    return values


def recording_to_json(rec: SimRecording) -> dict:
    """The simulator's fields of a recording as control JSON (what POST /_sim/recordings takes)."""
    sim = {k: v for k, v in asdict(rec).items() if k in RECORDING_FIELDS}
    for key in DATE_FIELDS:
        sim[key] = sim[key].isoformat() if sim[key] else None
    return sim


def control_view(rec: SimRecording, api_base: str) -> dict:
    """The Twilio resource, the simulator's own fields and the media sizes (cheap; no hashes)."""
    sim = {**recording_to_json(rec), "media_requests": rec.media_requests}
    sizes = {fmt: {str(ch): media_size(rec.sid, fmt, ch, rec.media_duration) for ch in (1, 2)}
             for fmt in FORMATS}
    return {"resource": recording_json(rec, api_base), "simulator": sim, "media_sizes": sizes}


async def _json_body(request: web.Request) -> object:
    try:
        return await request.json()
    except ValueError:
        raise BadRequest("body must be JSON") from None


async def _json_object(request: web.Request) -> dict[str, Any]:
    body = await _json_body(request)
    if not isinstance(body, dict):
        raise BadRequest("body must be a JSON object")
    return body


async def create_recordings(request: web.Request) -> web.Response:
    """POST /_sim/recordings: one JSON object, or a list of them, each a SimRecording."""
    state = request.app[STATE]
    try:
        body = await _json_body(request)
        items = body if isinstance(body, list) else [body]
        created = [state.create_recording(**recording_values(item)) for item in items]
    except (BadRequest, KeyError, TypeError, ValueError) as error:
        return web.json_response({"error": str(error)}, status=400)
    views = [control_view(rec, api_base(request)) for rec in created]
    return web.json_response(views if isinstance(body, list) else views[0], status=201)


def _recording(request: web.Request) -> SimRecording:
    rec = request.app[STATE].get(request.match_info["sid"])
    if rec is None:
        raise web.HTTPNotFound(text='{"error": "no such recording"}', content_type="application/json")
    return rec


async def show_recording(request: web.Request) -> web.Response:
    return web.json_response(control_view(_recording(request), api_base(request)))


async def update_recording(request: web.Request) -> web.Response:
    """PATCH /_sim/recordings/{sid}: change status, faults or any other field."""
    rec = _recording(request)
    try:
        values = recording_values(await _json_body(request))
        faults = {**asdict(rec.faults), **values.pop("faults")}
        rec.faults = Faults.from_dict(faults)
        for key, value in values.items():
            setattr(rec, key, value)
    except (BadRequest, TypeError, ValueError) as error:
        return web.json_response({"error": str(error)}, status=400)
    return web.json_response(control_view(rec, api_base(request)))


async def expected_media(request: web.Request) -> web.Response:
    """GET /_sim/recordings/{sid}/expected?format=wav&channels=2: size and SHA-256 of that file."""
    rec = _recording(request)
    fmt = request.query.get("format", "wav")
    raw = request.query.get("channels")
    channels = int(raw) if raw in ("1", "2") else rec.served_channels(None)
    if fmt not in FORMATS or raw not in (None, "1", "2"):
        return web.json_response({"error": "format is wav|mp3, channels is 1|2"}, status=400)
    digest = await asyncio.to_thread(media_sha256, rec.sid, fmt, channels, rec.media_duration)
    return web.json_response({"sid": rec.sid, "format": fmt, "channels": channels,
                              "size": media_size(rec.sid, fmt, channels, rec.media_duration),
                              "sha256": digest})


async def list_all(request: web.Request) -> web.Response:
    base = api_base(request)
    return web.json_response([control_view(r, base) for r in list(request.app[STATE].recordings.values())])


async def request_log(request: web.Request) -> web.Response:
    return web.json_response([entry.as_dict() for entry in list(request.app[STATE].requests)])


async def reset(request: web.Request) -> web.Response:
    request.app[STATE].reset()
    return web.json_response({"reset": True})


async def add_api_key(request: web.Request) -> web.Response:
    """POST /_sim/api-keys {account_sid, sid?, secret?}: the secret is returned only if generated."""
    state: SimState = request.app[STATE]
    try:
        body = await _json_object(request)
        given = body.get("secret")
        sid, secret = state.add_api_key(body["account_sid"], body.get("sid"), given)
    except (BadRequest, KeyError, AttributeError) as error:
        return web.json_response({"error": f"bad api key request: {error}"}, status=400)
    answer = {"sid": sid, "account_sid": body["account_sid"]}
    if given is None:
        answer["secret"] = secret
    return web.json_response(answer, status=201)


async def add_account(request: web.Request) -> web.Response:
    """POST /_sim/accounts {sid?, token?, parent?}: the token is returned only if generated."""
    state: SimState = request.app[STATE]
    try:
        body = await _json_object(request)
        given = body.get("token")
        sid, token = state.add_account(body.get("sid"), given, parent=body.get("parent"))
    except (BadRequest, AttributeError) as error:
        return web.json_response({"error": f"bad account request: {error}"}, status=400)
    return web.json_response({"sid": sid, **({"token": token} if given is None else {})}, status=201)


def add_control_routes(app: web.Application) -> None:
    app.router.add_get("/_sim/recordings", list_all)
    app.router.add_post("/_sim/recordings", create_recordings)
    app.router.add_get("/_sim/recordings/{sid}", show_recording)
    app.router.add_patch("/_sim/recordings/{sid}", update_recording)
    app.router.add_get("/_sim/recordings/{sid}/expected", expected_media)
    app.router.add_get("/_sim/requests", request_log)
    app.router.add_post("/_sim/reset", reset)
    app.router.add_post("/_sim/accounts", add_account)
    app.router.add_post("/_sim/api-keys", add_api_key)
