"""`create_app(settings)`: the aiohttp application Twilio calls, and the operations routes' listener."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator, Callable

from aiohttp import web
from aiohttp.typedefs import Handler

from recvault.audit import ledger_tail
from recvault.ingest import views
from recvault.ingest.context import INGEST, IngestContext
from recvault.ingest.graceful import IN_FLIGHT, InFlight
from recvault.ingest.handoff import Handoff
from recvault.ingest.metrics import IngestMetrics
from recvault.ingest.ops import views as ops_views
from recvault.ingest.ops.context import Operations
from recvault.ingest.server import server_options
from recvault.ingest.spool import Spool
from recvault.queue.celery_factory import create_celery
from recvault.queue.writer import QueueWriter, message_template
from recvault.settings import Settings, require_tokens

CALLBACK_PATH = "/twilio/recording-status"


@web.middleware
async def json_errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    """aiohttp's own refusals (404, 405, 413, …) answer JSON with a reason, like ours."""
    try:
        return await handler(request)
    except web.HTTPException as error:
        if error.status < 400:
            raise
        response = web.json_response({"error": error.reason}, status=error.status)
        for name in ("Allow",):
            if name in error.headers:
                response.headers[name] = error.headers[name]
        return response


def create_app(settings: Settings, *, ops_socket: socket.socket | None = None) -> web.Application:
    """Build the ingest app; connections open when it starts, close when it stops.

    The operations routes are on this app, unless RECVAULT_OPS_PORT is set: then they are served only
    on `ops_socket` (listening on that port), by an app of their own that starts and stops with this one.
    """
    require_tokens(settings)
    in_flight = InFlight()  # outermost, so it counts every request, refusals included
    app = web.Application(client_max_size=settings.max_body_bytes, middlewares=[in_flight.middleware, json_errors])
    app[IN_FLIGHT] = in_flight
    celery = create_celery(settings)  # refuses broker options ingest cannot honour, at start
    message_template(celery, settings.queue)  # a Celery whose messages it cannot template fails here

    async def resources(app: web.Application) -> AsyncIterator[None]:
        metrics = IngestMetrics(multiprocess_dir=settings.metrics_dir)
        writer = QueueWriter.for_app(
            celery,
            settings.queue,
            settings.dedup_ttl_seconds,
            timeout=settings.publish_timeout_seconds,
            connect_timeout=min(settings.redis_connect_timeout_seconds, settings.publish_timeout_seconds),
            replicas=settings.enqueue_replicas,
        )
        spool = Spool(settings.spool_dir / "callbacks.sqlite3", max_bytes=settings.spool_max_bytes)
        handoff = Handoff(writer, spool, metrics)
        handoff.start(asyncio.get_running_loop())
        # The ledger's age for /metrics, on a client of its own with short timeouts (never the hand-off's).
        ledger_client, ledger_stream = ledger_tail.tail_client(settings), ledger_tail.stream_key(settings)
        metrics.ledger_age.read = lambda: ledger_tail.oldest_row_age(ledger_client, ledger_stream)
        ops = Operations.open(settings, celery, metrics.registry) if settings.api_token.get_secret_value() else None
        app[INGEST] = IngestContext(settings, celery, metrics, handoff, ops)
        yield
        if ops is not None:
            ops.close()
        await asyncio.get_running_loop().run_in_executor(None, handoff.close)
        ledger_client.close()

    app.cleanup_ctx.append(resources)
    app.router.add_route("POST", CALLBACK_PATH, views.recording_status)
    app.router.add_route("GET", CALLBACK_PATH, views.recording_status)
    app.router.add_get("/healthz", views.healthz)
    app.router.add_get("/readyz", views.readyz)
    app.router.add_get("/metrics", views.metrics)
    if settings.ops_port is None:
        ops_views.add_routes(app)
    elif ops_socket is not None:
        app.cleanup_ctx.append(_ops_listener(settings, ops_socket, in_flight))
    return app


def _ops_listener(settings: Settings, sock: socket.socket,
                       in_flight: InFlight) -> Callable[[web.Application], AsyncIterator[None]]:
    """Serve the operations routes on `sock` while `app` runs, from its context.

    It starts after the app's resources and stops before them (cleanup runs in reverse), finishing
    its requests in flight first; the in-flight count it shares lets a graceful stop wait for them.
    """

    async def listener(app: web.Application) -> AsyncIterator[None]:
        ops_app = web.Application(client_max_size=settings.max_body_bytes,
                                       middlewares=[in_flight.middleware, json_errors])
        ops_app[INGEST] = app[INGEST]
        ops_views.add_routes(ops_app)
        runner = web.AppRunner(ops_app, handle_signals=False, access_log=None, **server_options(settings))
        await runner.setup()
        try:
            await web.SockSite(runner, sock).start()
            yield
        finally:
            await runner.cleanup()

    return listener
