"""Serving until told to stop (SIGTERM, SIGINT), then stopping without dropping a request in flight.

aiohttp's own shutdown (`run_app`) closes every connection as it begins, and a connection
closed that way ignores the rest of a request body still arriving: a callback whose body
was split across packets would end in a 408 that Twilio does not retry. So ingest stops in
this order instead:

1. close the listening socket: new connections are refused (the load balancer tries another pod);
2. let every request already being handled finish, answered with `Connection: close`, for at
   most SHUTDOWN_GRACE_SECONDS (Twilio gives up on an answer after 15 s anyway);
3. clean up: idle connections are closed, then the hand-off delivers everything submitted
   to it, to Redis or the spool, before the process exits.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import socket

from aiohttp import web
from aiohttp.typedefs import Handler

from recvault.ingest.limits import SHUTDOWN_GRACE_SECONDS
from recvault.ingest.server import server_options
from recvault.settings import Settings

log = logging.getLogger("recvault.ingest")


class InFlight:
    """Counts the requests being handled; once stopping, their connections close after the answer."""

    def __init__(self) -> None:
        self.count = 0
        self.stopping = False
        self._idle = asyncio.Event()
        self._idle.set()

    @web.middleware
    async def middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        self.count += 1
        self._idle.clear()
        try:
            response = await handler(request)
        finally:
            self.count -= 1
            if not self.count:
                self._idle.set()
        if self.stopping:
            response.force_close()
        return response

    async def drained(self, timeout: float) -> bool:
        """Wait until no request is being handled; False if some still were after `timeout` seconds."""
        self.stopping = True
        try:
            await asyncio.wait_for(self._idle.wait(), timeout)
        except TimeoutError:
            return False
        return True


IN_FLIGHT = web.AppKey("in_flight", InFlight)


async def serve(app: web.Application, sock: socket.socket, settings: Settings, *, backlog: int) -> None:
    """Serve `app` on the listening `sock` until SIGTERM or SIGINT, then stop in the order above."""
    runner = web.AppRunner(app, handle_signals=False, access_log=None, **server_options(settings))
    await runner.setup()
    try:
        site = web.SockSite(runner, sock, backlog=backlog)
        await site.start()
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, stop.set)
        await stop.wait()
        await site.stop()
        in_flight = app[IN_FLIGHT]
        log.info("stopping: no new connections; finishing requests in flight", extra={"in_flight": in_flight.count})
        if not await in_flight.drained(SHUTDOWN_GRACE_SECONDS):
            log.warning("stopping with requests still in flight", extra={"in_flight": in_flight.count})
    finally:
        await runner.cleanup()
