"""The aiohttp server around the app: its limits and timeouts, and how it logs what its parser refuses."""

from __future__ import annotations

import logging
from typing import Any

from aiohttp.http_exceptions import HttpProcessingError

from recvault.ingest.limits import (
    LINGER_SECONDS,
    MAX_HEADER_FIELD_BYTES,
    MAX_HEADERS,
    MAX_REQUEST_LINE_BYTES,
    SHUTDOWN_GRACE_SECONDS,
)
from recvault.settings import Settings

# aiohttp's logger for requests it fails before the app sees them.
SERVER_LOGGER = "aiohttp.server"


def server_options(settings: Settings) -> dict[str, Any]:
    """Keyword arguments for `web.AppRunner`: every bound set here, none left to defaults."""
    return {
        # aiohttp closes a connection whose request headers are not complete this long after it
        # opened or after the previous answer: the bound on slow headers and on idle keep-alive.
        "keepalive_timeout": settings.idle_timeout_seconds,
        "max_line_size": MAX_REQUEST_LINE_BYTES,
        "max_field_size": MAX_HEADER_FIELD_BYTES,
        "max_headers": MAX_HEADERS,
        "lingering_time": LINGER_SECONDS,
        # How long a handler still running when the runner cleans up may take (see graceful.py).
        "shutdown_timeout": SHUTDOWN_GRACE_SECONDS,
    }


class ParserRefusals(logging.Filter):
    """Requests aiohttp's parser refuses (400) as one INFO line, not an error with a traceback.

    They are a client's bad bytes, not recvault's fault, and junk must not fill the logs.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        error = record.exc_info[1] if record.exc_info else None
        if isinstance(error, HttpProcessingError):
            record.msg, record.args = "request refused by the HTTP parser", ()
            record.levelno, record.levelname = logging.INFO, logging.getLevelName(logging.INFO)
            record.exc_info, record.exc_text = None, None
            record.__dict__.update(status=error.code, reason=type(error).__name__)
        return True


def quiet_parser_refusals() -> None:
    """Install ParserRefusals on aiohttp's server logger (once)."""
    logger = logging.getLogger(SERVER_LOGGER)
    if not any(isinstance(f, ParserRefusals) for f in logger.filters):
        logger.addFilter(ParserRefusals())
