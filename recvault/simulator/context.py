"""What the simulator's handlers share: its state and the base URL it reports."""

from __future__ import annotations

from aiohttp import web

from recvault.simulator.recordings import SimState

STATE = web.AppKey("sim_state", SimState)
PUBLIC_BASE = web.AppKey("sim_public_base", str)  # base URL used in media_url ("" = from request)


def api_base(request: web.Request) -> str:
    """scheme://host[:port] that clients used, unless a public base URL was configured."""
    return request.app[PUBLIC_BASE] or str(request.url.origin())
