"""Callbacks at a fixed rate from their own process: `python -m bench.fixed_rate FILE URL RATE COUNT`.

wrk drives a server as hard as it can; this measures latency at an offered rate instead.
It replays the first COUNT pre-signed callbacks of FILE with the simulator's CallbackSender
(`send_many(rate=…)`) and prints one JSON object: counts, achieved rate, latency percentiles.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from pathlib import Path

from yarl import URL

from bench.stats import percentile
from recvault.simulator.callbacks import FORM_TYPE, USER_AGENT, CallbackSender, PreparedCallback

CONCURRENCY = 64


def prepared(path: Path, url: str, count: int) -> list[PreparedCallback]:
    """The first `count` lines as ready-to-send requests."""
    target = URL(url, encoded=True)
    items = []
    with path.open() as lines:
        for _, line in zip(range(count), lines, strict=False):
            signature, body = line.rstrip("\n").split("\t", 1)
            headers = {"X-Twilio-Signature": signature, "Content-Type": FORM_TYPE, "User-Agent": USER_AGENT}
            items.append(PreparedCallback("POST", target, body.encode(), headers, "", "completed"))
    if len(items) < count:
        raise SystemExit(f"{path} holds {len(items)} callbacks, {count} asked")
    return items


async def send(url: str, items: list[PreparedCallback], rate: float) -> dict:
    async with CallbackSender(url, auth_token="unused", concurrency=CONCURRENCY) as sender:
        started = time.perf_counter()
        results = await sender.send_many(items, rate=rate)
        elapsed = time.perf_counter() - started
    latencies = [r.elapsed * 1000 for r in results]
    ok = sum(r.ok for r in results)
    return {"sent": len(results), "ok": ok, "errors": len(results) - ok,
            "offered_rate": rate, "achieved_rate": round(len(results) / elapsed, 1),
            "p50_ms": round(percentile(latencies, 50), 3), "p90_ms": round(percentile(latencies, 90), 3),
            "p99_ms": round(percentile(latencies, 99), 3), "max_ms": round(max(latencies, default=0), 3)}


def main(argv: list[str]) -> int:
    path, url, rate, count = Path(argv[0]), argv[1], float(argv[2]), int(argv[3])
    items = prepared(path, url, count)
    try:
        import uvloop
        runner = uvloop.run
    except ImportError:
        runner = asyncio.run
    print(json.dumps(runner(send(url, items, rate))))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
