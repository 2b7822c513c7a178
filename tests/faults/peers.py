"""Peers the suite watches: the simulated Twilio with a deletion witness, and a foreign host."""

from __future__ import annotations

import asyncio
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from aiohttp import web

from recvault.simulator.recordings import SimState
from recvault.simulator.server import SimServer

DELETE_PATH = re.compile(r"/Recordings/(?P<sid>RE[0-9a-fA-F]{32})\.json$")


@dataclass(frozen=True)
class Deletion:
    """One DELETE Twilio received, with what the archive looked like at that moment."""

    recording_sid: str
    problem: str | None  # None: the archived copy was there and verified
    at: float


class WitnessedSim(SimServer):
    """The simulator, checking the archive (before answering) every time it is asked to delete."""

    def __init__(self, state: SimState, check: Callable[[str], str | None]) -> None:
        super().__init__(state)
        self._check = check
        self.deletions: list[Deletion] = []

    def build_app(self) -> web.Application:
        app = super().build_app()

        @web.middleware
        async def witness(request: web.Request, handler) -> web.StreamResponse:
            match = DELETE_PATH.search(request.path)
            if request.method == "DELETE" and match:
                problem = await asyncio.to_thread(self._check, match["sid"])
                self.deletions.append(Deletion(match["sid"], problem, time.time()))
            return await handler(request)

        app.middlewares.append(witness)  # inside the simulator's auth: only authorised requests
        return app


@dataclass(frozen=True)
class ForeignRequest:
    """A request that reached the foreign host."""

    method: str
    path: str
    authorization: bool


class ForeignHost:
    """An HTTP server no recvault component may ever contact; it records whoever does."""

    def __init__(self) -> None:
        self.requests: list[ForeignRequest] = []
        received = self.requests

        class Handler(BaseHTTPRequestHandler):
            def _record(self) -> None:
                received.append(ForeignRequest(self.command, self.path, "Authorization" in self.headers))
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            do_GET = do_POST = do_DELETE = do_HEAD = _record

            def log_message(self, format: str, *args: object) -> None:
                return None

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, name="foreign-host", daemon=True)

    def start(self) -> ForeignHost:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
