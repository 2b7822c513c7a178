"""HTTP handlers: the recording-status callback, health, readiness and metrics."""

from __future__ import annotations

import asyncio
import logging
import time
from datetime import UTC, datetime

from aiohttp import web
from multidict import MultiDict
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from recvault import labels as label_rules
from recvault.audit.ledger import ledger_row
from recvault.events import InvalidCallback, Params, RecordingStatusEvent
from recvault.ingest.context import INGEST, IngestContext
from recvault.ingest.parsing import Rejected, decode, informational, parse_form, parse_json_object, read_body
from recvault.ingest.signature import UnusableHeader, could_match, is_valid, signed_url
from recvault.queue.writer import build_message
from recvault.settings import Settings
from recvault.versions import MESSAGE_FIELD, MESSAGE_VERSION

log = logging.getLogger("recvault.ingest")

FORM = "application/x-www-form-urlencoded"
JSON = "application/json"


def _forged() -> Rejected:
    return Rejected(403, "X-Twilio-Signature is missing or does not match", "signature")


async def recording_status(request: web.Request) -> web.Response:
    """Verify, parse, hand off durably, answer — nothing else on this path."""
    ctx = request.app[INGEST]
    started = time.perf_counter()
    try:
        event = await _verified_event(request, ctx)
    except Rejected as rejected:
        ctx.metrics.rejected.labels(rejected.label).inc()
        log.info("callback rejected", extra={"reason": rejected.label, "status": rejected.status})
        return _error(rejected.status, rejected.reason)

    received_at = datetime.now(UTC).isoformat()
    payload = {
        MESSAGE_FIELD: MESSAGE_VERSION,
        "params": event.params,
        "labels": event.labels,
        "received_at": received_at,
        # Not signed and only kept for the record: a value Twilio could not have sent is left out.
        "idempotency_token": informational(request.headers.get("I-Twilio-Idempotency-Token")),
    }
    outgoing = build_message(ctx.celery, ctx.settings.queue, event.dedup_key, payload,
                             ledger=ledger_row(event.recording_sid, event.recording_status,
                                               event.account_sid, received_at))
    try:
        outcome = await ctx.handoff.submit(outgoing)
    except Exception:  # neither Redis nor the spool could keep it: say so, do not pretend
        ctx.metrics.rejected.labels("unavailable").inc()
        return _error(503, "cannot store the callback durably right now")
    ctx.metrics.accepted.labels(outcome.value).inc()
    ctx.metrics.request_seconds.observe(time.perf_counter() - started)
    # DEBUG: at thousands of callbacks a second an INFO line each would flood the logs;
    # the counters, refusals (INFO) and the workers' per-recording lines carry the story.
    if log.isEnabledFor(logging.DEBUG):
        log.debug(
            "callback accepted",
            extra={
                "recording_sid": event.recording_sid,
                "status": event.recording_status,
                "outcome": outcome.value,
                "task_id": outgoing.task_id,
            },
        )
    return web.Response(status=204)


async def _verified_event(request: web.Request, ctx: IngestContext) -> RecordingStatusEvent:
    """Cheapest refusals first: nothing unsigned gets its body read or parsed past the limits."""
    settings = ctx.settings
    raw_query = request.rel_url.raw_query_string
    if request.method == "POST" and request.content_type not in (FORM, JSON):
        raise Rejected(415, f"Content-Type must be {FORM} or {JSON}", "content_type")
    signature = request.headers.get("X-Twilio-Signature")
    if not could_match(signature):  # no HMAC-SHA1 in base64: refused before the body is read
        raise _forged()
    url = _signed_url(request, settings)
    signed: MultiDict[str] | str | None
    if request.method == "GET":
        params = parse_form(raw_query, too_many=414)
        signed = None
    elif request.content_type == FORM:
        params = parse_form(await read_body(request, settings.max_body_bytes), too_many=413)
        signed = params
    else:
        signed = decode(await read_body(request, settings.max_body_bytes))
        if "bodySHA256=" not in raw_query:
            raise Rejected(400, "JSON callbacks must carry bodySHA256 in the URL", "invalid")
        # Twilio signs a JSON callback's URL, which carries the body's SHA-256: that much is
        # checked with every known token before the body is parsed, to find its AccountSid.
        if not is_valid(url, signed, signature, settings.every_token()):
            raise _forged()
        params = parse_json_object(signed)

    account = params.get("AccountSid")
    tokens = settings.tokens_for(account if isinstance(account, str) else None)
    if not is_valid(url, signed, signature, tokens):
        raise _forged()

    # Signed with the URL, so trusted from here on (recvault.labels says which are labels).
    query = params if request.method == "GET" else parse_form(raw_query, too_many=414)
    try:
        labels = label_rules.from_query(list(query.items()), shared_with_twilio=request.method == "GET")
    except label_rules.InvalidLabels as error:
        raise Rejected(400, str(error), "label") from None
    try:
        event = RecordingStatusEvent.from_params(_plain(params), labels)
    except InvalidCallback as error:
        raise Rejected(400, str(error), "invalid") from None
    host = event.media_host
    if host is not None and host.lower() not in settings.allowed_media_hosts:
        raise Rejected(400, f"RecordingUrl host {host!r} is not an allowed Twilio host", "foreign_host")
    return event


def _signed_url(request: web.Request, settings: Settings) -> str:
    try:
        return signed_url(
            scheme=request.scheme,
            host=request.host,
            raw_path_qs=request.raw_path,
            public_url=str(settings.public_url) if settings.public_url else None,
            forwarded_proto=request.headers.get("X-Forwarded-Proto"),
            forwarded_host=request.headers.get("X-Forwarded-Host"),
            trust_forwarded=settings.trust_forwarded_headers,
        )
    except UnusableHeader as error:
        raise Rejected(400, str(error), "host") from None


def _plain(params: MultiDict[str]) -> Params:
    """Every received parameter, repeated ones as lists, for the queue message."""
    plain: Params = {}
    for key in params.keys():
        if key in plain:
            continue
        values = params.getall(key)
        plain[key] = values[0] if len(values) == 1 else values
    return plain


def _error(status: int, reason: str) -> web.Response:
    return web.json_response({"error": reason}, status=status)


async def healthz(request: web.Request) -> web.Response:
    """Liveness: the process answers and its hand-off thread runs."""
    alive = request.app[INGEST].handoff.alive
    return web.json_response({"status": "ok" if alive else "hand-off thread stopped"}, status=200 if alive else 503)


async def readyz(request: web.Request) -> web.Response:
    """Readiness: callbacks are accepted durably; 'degraded' while they go to the spool.

    Also 'degraded' while no replica acknowledges the broker's writes: callbacks still reach the
    queue, and copies of them are held in the spool (`unreplicated`) until a replica does.
    """
    handoff = request.app[INGEST].handoff
    ready = handoff.alive and handoff.accepting
    body: dict[str, str | int] = {
        "status": "unavailable" if not ready else "degraded" if handoff.degraded else "ok",
        "broker": "up" if handoff.broker_up else "down",
        "spool": "ok" if handoff.spool_error is None else f"failing: {handoff.spool_error}",
        "spool_depth": handoff.spool_depth,
    }
    if handoff.unreplicated or not handoff.replicated:
        body["replication"] = "unacknowledged"
        body["unreplicated"] = handoff.unreplicated
    if not handoff.alive:
        body["reason"] = "hand-off thread stopped"
    elif not handoff.accepting:
        body["reason"] = ("neither Redis nor the spool can keep callbacks" if not handoff.broker_up
                          else "neither a replica nor the spool can keep callbacks")
    return web.json_response(body, status=200 if ready else 503)


async def metrics(request: web.Request) -> web.Response:
    """Prometheus exposition; with several processes, summed over all of them.

    Rendered on a thread: the ledger's age is read from Redis as it renders (ingest.metrics.LedgerAge).
    """
    registry = request.app[INGEST].metrics.exposed
    body = await asyncio.get_running_loop().run_in_executor(None, generate_latest, registry)
    response = web.Response(body=body)
    response.content_type = CONTENT_TYPE_LATEST.split(";")[0]
    return response
