"""Helpers shared by the simulator tests: free ports, waiting for a server, a callback receiver."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import requests
from aiohttp import web


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_until_up(base: str, timeout: float = 30) -> None:
    """Poll the simulator's control API until it answers."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if requests.get(f"{base}/_sim/recordings", timeout=1).status_code == 200:
                return
        except requests.ConnectionError:
            time.sleep(0.1)
    raise AssertionError(f"simulator did not come up at {base}")


class Receiver:
    """A Recording Status Callback endpoint that records every request it gets."""

    def __init__(self) -> None:
        self.calls: list[dict] = []
        self.answer, self.delay = 204, 0.0
        self.inflight = self.max_inflight = 0
        self.url = ""

    async def handle(self, request: web.Request) -> web.Response:
        self.inflight += 1
        self.max_inflight = max(self.max_inflight, self.inflight)
        try:
            params = dict(await request.post()) if request.method == "POST" else {}
            self.calls.append({"method": request.method, "url": f"http://{request.host}{request.raw_path}",
                               "params": params, "headers": dict(request.headers)})
            await asyncio.sleep(self.delay)
            return web.Response(status=self.answer)
        finally:
            self.inflight -= 1


@asynccontextmanager
async def running_receiver() -> AsyncIterator[Receiver]:
    """A Receiver served by aiohttp on a free port of 127.0.0.1."""
    target = Receiver()
    app = web.Application()
    app.router.add_route("*", "/twilio/recording-status", target.handle)
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.5)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    target.url = f"http://127.0.0.1:{runner.addresses[0][1]}/twilio/recording-status"
    try:
        yield target
    finally:
        await runner.cleanup()
