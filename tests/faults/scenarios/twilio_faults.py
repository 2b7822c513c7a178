"""Scenario 4: Twilio misbehaving at volume — 404 windows, 429 storms, 5xx, cut and short bodies."""

from __future__ import annotations

import asyncio
import random
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from recvault.simulator.callbacks import CallbackSender
from recvault.simulator.media import media_size
from recvault.simulator.recordings import SimRecording
from tests.faults.harness import Stack, StackOptions
from tests.faults.result import ScenarioResult
from tests.faults.traffic import Event, Traffic, deliver, interleave, lifecycle
from tests.faults.verdict import judge, settle
from tests.faults.workload import recordings

NAME = "4 Twilio faults"
# Faults that pass: each recording gets up to two of them and must still be archived.
TRANSIENT = ("404 window", "429 storm", "5xx", "cut body", "wrong length", "slow", "no dual")
# Share of recordings Twilio never serves: they must end in the dead-letter store.
GONE_SHARE = 0.05
FOREVER_5XX_SHARE = 0.05


@dataclass(frozen=True)
class Size:
    recordings: int
    # How long a 404 may mean "not yet", and the cap of the retry backoff: together they set
    # how long the recordings Twilio never serves take to reach the dead-letter store.
    not_found_grace: int = 15
    retry_backoff_max_seconds: int = 2
    large_share: float = 0.1


QUICK = Size(recordings=40, not_found_grace=8, retry_backoff_max_seconds=1)
FULL = Size(recordings=250)


def run(workdir: Path, size: Size, seed: int = 4) -> ScenarioResult:
    rng = random.Random(seed)
    options = StackOptions(max_retries=12, retry_backoff_max_seconds=size.retry_backoff_max_seconds,
                           not_found_grace=size.not_found_grace)
    result = ScenarioResult(NAME, "")
    with Stack(workdir, options) as stack:
        recs = recordings(stack.sim.state, rng, size.recordings, large_share=size.large_share)
        injected, doomed = plan_faults(rng, recs)
        signer = CallbackSender(stack.callback_url, auth_token=stack.token)
        prepared = interleave(lifecycle(signer, recs, stack.sim.base_url))
        traffic = Traffic()
        traffic.record(asyncio.run(deliver(stack.callback_url, stack.token, prepared, concurrency=32)))
        settle(stack, traffic.accepted, timeout=300)
        judge(stack, result, traffic.accepted, signed={(p.recording_sid, p.status) for p in prepared},
              expect_dead=doomed)
        media_requests = sum(rec.media_requests for rec in recs)
        result.server_errors = traffic.server_errors
        result.injected = f"{sum(injected.values())} faults on {size.recordings} recordings"
        result.notes.append("faults: " + ", ".join(f"{kind} ×{n}" for kind, n in sorted(injected.items())))
        result.notes.append(f"callbacks {traffic.summary()}; {media_requests} media requests; "
                            f"{len(doomed)} recordings Twilio never serves")
    return result


def plan_faults(rng: random.Random, recs: list[SimRecording]) -> tuple[Counter, set[Event]]:
    """Give each completed recording its faults; returns the count per kind and the doomed events."""
    injected: Counter = Counter()
    doomed: set[Event] = set()
    for rec in recs:
        if rec.status != "completed":
            continue
        roll = rng.random()
        if roll < GONE_SHARE:
            rec.faults.gone = True
            injected["gone for good"] += 1
            doomed.add((rec.sid, "completed"))
            continue
        if roll < GONE_SHARE + FOREVER_5XX_SHARE:
            rec.faults.server_errors = 10_000
            injected["5xx for good"] += 1
            doomed.add((rec.sid, "completed"))
            continue
        for kind in rng.sample(TRANSIENT, rng.choice((0, 1, 2, 2))):
            if _apply(rng, rec, kind):
                injected[kind] += 1
    return injected, doomed


def _apply(rng: random.Random, rec: SimRecording, kind: str) -> bool:
    faults = rec.faults
    if kind == "404 window":
        faults.not_found_seconds = rng.uniform(1.0, 4.0)
    elif kind == "429 storm":
        faults.rate_limited, faults.retry_after_seconds = rng.randint(2, 4), rng.randint(1, 2)
    elif kind == "5xx":
        faults.server_errors = rng.randint(1, 3)
    elif kind == "cut body":
        size = media_size(rec.sid, "wav", rec.channels, rec.duration)
        faults.cut_after_bytes, faults.cut_times = rng.randint(45, max(46, size - 1)), rng.randint(1, 2)
    elif kind == "wrong length":
        faults.wrong_length_times = rng.randint(1, 2)
    elif kind == "slow":
        faults.slow_seconds = rng.uniform(0.5, 2.0)
    elif kind == "no dual" and rec.channels == 2:
        faults.dual_unavailable = True
    else:
        return False
    return True
