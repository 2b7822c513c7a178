"""A slow client: it sends a request's start, then one byte at a time, until the server ends it."""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import dataclass

# Seconds between two bytes: slow enough to hold a connection, fast enough to look alive.
TRICKLE_SECONDS = 0.3


@dataclass(frozen=True)
class Trickled:
    """How the server treated one slow client."""

    answered_after: float | None  # seconds until the first byte of an answer, if one came
    closed_after: float | None  # seconds until the server closed the connection; None: it never did
    answer: bytes

    @property
    def status(self) -> int | None:
        parts = self.answer.split(b" ", 2)
        return int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else None


async def trickle(port: int, head: bytes, *, give_up: float) -> Trickled:
    """Send `head` to 127.0.0.1:`port`, then a byte every TRICKLE_SECONDS for at most `give_up` seconds."""
    started = time.monotonic()
    reader, writer = await asyncio.open_connection("127.0.0.1", port)

    async def feed() -> None:
        writer.write(head)
        while True:
            await writer.drain()
            await asyncio.sleep(TRICKLE_SECONDS)
            writer.write(b"a")

    feeder = asyncio.create_task(feed())
    answer, answered_after, closed_after = b"", None, None
    try:
        async with asyncio.timeout(give_up):
            while chunk := await reader.read(4096):
                answered_after = answered_after or time.monotonic() - started
                answer += chunk
        closed_after = time.monotonic() - started
    except TimeoutError:
        pass
    except OSError:  # reset by the server: cut off all the same
        closed_after = time.monotonic() - started
    finally:
        feeder.cancel()
        with contextlib.suppress(asyncio.CancelledError, OSError):
            await feeder
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()
    return Trickled(answered_after, closed_after, answer)
