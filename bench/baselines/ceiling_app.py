"""The ingest ceiling: aiohttp (with uvloop, as recvault runs) parsing the same form body, answering 204.

No signature check, no validation, no hand-off: what one process can answer at best.
Run as `python -m bench.baselines.ceiling_app PORT`.
"""

from __future__ import annotations

import sys
from urllib.parse import parse_qsl

from aiohttp import web


async def recording_status(request: web.Request) -> web.Response:
    """Read and parse the body, nothing else."""
    parse_qsl((await request.read()).decode(), keep_blank_values=True)
    return web.Response(status=204)


def create_app() -> web.Application:
    app = web.Application()
    app.router.add_post("/twilio/recording-status", recording_status)
    return app


def main(port: int) -> None:
    import uvloop

    web.run_app(create_app(), host="127.0.0.1", port=port, print=None, access_log=None,
                loop=uvloop.new_event_loop())


if __name__ == "__main__":
    main(int(sys.argv[1]))
