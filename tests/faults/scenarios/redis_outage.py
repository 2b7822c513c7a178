"""Scenario 2: Redis stopped, and killed, and restarted while callbacks stream in."""

from __future__ import annotations

import random
import time
from dataclasses import dataclass
from pathlib import Path

from recvault.simulator.callbacks import CallbackSender
from tests.faults.harness import Stack, StackOptions
from tests.faults.result import ScenarioResult
from tests.faults.traffic import Traffic, interleave, lifecycle, stream_during
from tests.faults.verdict import judge, settle
from tests.faults.workload import recordings

NAME = "2 Redis outage"
# Share of callbacks Twilio delivers twice, and of recordings whose media answers 429 first
# (their retries are published while Redis may be away).
REPLAY_SHARE = 0.1
THROTTLED_SHARE = 0.2


@dataclass(frozen=True)
class Size:
    recordings: int
    outages: int
    outage_seconds: float
    gap_seconds: float


QUICK = Size(recordings=30, outages=2, outage_seconds=4, gap_seconds=1.5)
FULL = Size(recordings=200, outages=4, outage_seconds=10, gap_seconds=5)


def run(workdir: Path, size: Size, seed: int = 2) -> ScenarioResult:
    rng = random.Random(seed)
    options = StackOptions()
    result = ScenarioResult(NAME, f"{size.outages} outages")
    with Stack(workdir, options) as stack:
        recs = recordings(stack.sim.state, rng, size.recordings)
        for rec in rng.sample(recs, int(len(recs) * THROTTLED_SHARE)):
            rec.faults.rate_limited, rec.faults.retry_after_seconds = 2, 1
        signer = CallbackSender(stack.callback_url, auth_token=stack.token)
        prepared = interleave(lifecycle(signer, recs, stack.sim.base_url))
        prepared += rng.sample(prepared, int(len(prepared) * REPLAY_SHARE))
        seconds = size.outages * (size.outage_seconds + size.gap_seconds) + size.gap_seconds
        readiness: list[dict] = []
        traffic = Traffic()
        traffic.record(stream_during(stack.callback_url, stack.token, prepared, seconds,
                                     lambda: outages(stack, size, readiness)))
        settle(stack, traffic.accepted, timeout=240)
        judge(stack, result, traffic.accepted, signed={(p.recording_sid, p.status) for p in prepared})
        final = stack.readyz()
        if final != {"status": "ok", "broker": "up", "spool": "ok", "spool_depth": 0}:
            result.problems.append(f"ingest not ready after the outages: {final}")
        spooled = max((r.get("spool_depth", 0) for r in readiness), default=0)
        result.server_errors = traffic.server_errors
        result.injected = (f"{size.outages} outages of {size.outage_seconds:.0f} s "
                           "(stop and kill -9 in turn)")
        result.notes.append(f"callbacks {traffic.summary()}; spool held up to {spooled} during outages")
    return result


def outages(stack: Stack, size: Size, readiness: list[dict]) -> None:
    """Take Redis away `size.outages` times, gracefully and with SIGKILL in turn."""
    for n in range(size.outages):
        time.sleep(size.gap_seconds)
        take_down = stack.redis.stop if n % 2 == 0 else stack.redis.kill  # graceful, then SIGKILL
        take_down()
        deadline = time.monotonic() + size.outage_seconds
        while time.monotonic() < deadline:
            readiness.append(stack.readyz())
            time.sleep(0.5)
        stack.redis.start()
