"""Peers the suite watches: the simulated Twilio with a deletion witness, and a foreign host."""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Callable
from dataclasses import dataclass

from aiohttp import web

from recvault.simulator.recordings import SimState
from recvault.simulator.server import SimServer
from tests.fixtures.foreign_host import ForeignHost

__all__ = ["Deletion", "ForeignHost", "WitnessedSim"]

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
