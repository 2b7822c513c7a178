"""Run the simulator on a free local port: in the caller's event loop or on its own thread."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

from aiohttp import web

from recvault.simulator.api import create_sim_app
from recvault.simulator.media import media_sha256, media_size
from recvault.simulator.recordings import SimRecording, SimState


class SimServer:
    """A simulated Twilio on a real socket; `async with` it, or `with` it (a background thread)."""

    def __init__(self, state: SimState | None = None, *, host: str = "127.0.0.1", port: int = 0,
                 public_base_url: str = "") -> None:
        self.state = state if state is not None else SimState()
        self.host, self.port = host, port
        self._public_base_url = public_base_url
        self._runner: web.AppRunner | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None

    @property
    def base_url(self) -> str:
        """http://host:port of the running server (the Twilio API base and control API)."""
        if not self.port:
            raise RuntimeError("the simulator is not running")
        return f"http://{self.host}:{self.port}"

    # --- in the caller's event loop ---------------------------------------------
    def build_app(self) -> web.Application:
        """The simulator's application; subclasses may add middleware to it."""
        return create_sim_app(self.state, public_base_url=self._public_base_url)

    async def start(self) -> str:
        app = self.build_app()
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False, shutdown_timeout=1.0)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port)
        await site.start()
        self.port = self._runner.addresses[0][1]
        return self.base_url

    async def close(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> SimServer:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    # --- on a background thread (for synchronous callers) ------------------------
    def start_in_thread(self) -> str:
        """Serve from a daemon thread with its own event loop; returns base_url once listening."""
        ready = threading.Event()
        failure: list[BaseException] = []

        def serve() -> None:
            self._loop = asyncio.new_event_loop()
            try:
                self._loop.run_until_complete(self.start())
            except BaseException as error:  # reported to the starting thread
                failure.append(error)
                ready.set()
                self._loop.close()
                return
            ready.set()
            self._loop.run_forever()
            self._loop.run_until_complete(self.close())
            self._loop.close()

        self._thread = threading.Thread(target=serve, name="twilio-simulator", daemon=True)
        self._thread.start()
        ready.wait()
        if failure:
            raise failure[0]
        return self.base_url

    def stop(self) -> None:
        """Stop a server started with start_in_thread and wait for its thread."""
        if self._loop is not None and self._thread is not None:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout=30)
            self._thread = self._loop = None

    def __enter__(self) -> SimServer:
        self.start_in_thread()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    # --- helpers for tests and the demo ---------------------------------------------
    def create_recording(self, **values: Any) -> SimRecording:
        """Register a recording (default account unless `account_sid` is given)."""
        return self.state.create_recording(**values)

    def recording_url(self, rec: SimRecording) -> str:
        """The RecordingUrl Twilio would send in callbacks: no extension."""
        return f"{self.base_url}/2010-04-01/Accounts/{rec.account_sid}/Recordings/{rec.sid}"

    def expected(self, rec: SimRecording, fmt: str = "wav", channels: int | None = None) -> tuple[int, str]:
        """(size, sha256 hex) of the file a download of `fmt` / `channels` must produce."""
        served = channels or rec.served_channels(None)
        return (media_size(rec.sid, fmt, served, rec.media_duration),
                media_sha256(rec.sid, fmt, served, rec.media_duration))
