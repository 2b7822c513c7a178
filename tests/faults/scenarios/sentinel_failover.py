"""Scenario 9: the Sentinel-managed master is SIGKILLed while callbacks stream in; its replica takes over."""

from __future__ import annotations

import random
import time
from dataclasses import dataclass
from pathlib import Path

from recvault.simulator.callbacks import CallbackSender
from tests.faults.harness import StackOptions
from tests.faults.result import ScenarioResult
from tests.faults.sentinel_stack import Failover, SentinelStack
from tests.faults.traffic import Traffic, interleave, lifecycle, stream_during
from tests.faults.verdict import judge, settle
from tests.faults.workload import recordings

NAME = "10 Sentinel failover"
# Share of callbacks Twilio delivers twice, and of recordings whose media answers 429 first
# (their retries are published while the master may be gone).
REPLAY_SHARE = 0.1
THROTTLED_SHARE = 0.2
# Seconds a failover takes here beyond the time the old master stays down: the promotion
# (about 2 s with down-after 1 s) and its return as a replica (Sentinel waits about 8 s
# before it reconfigures an instance that comes back claiming to be a master).
FAILOVER_SECONDS = 14


@dataclass(frozen=True)
class Size:
    recordings: int
    failovers: int
    down_seconds: float
    gap_seconds: float


QUICK = Size(recordings=40, failovers=1, down_seconds=2, gap_seconds=3)
FULL = Size(recordings=200, failovers=2, down_seconds=5, gap_seconds=5)


def run(workdir: Path, size: Size, seed: int = 9) -> ScenarioResult:
    rng = random.Random(seed)
    result = ScenarioResult(NAME, f"{size.failovers} master kill -9")
    with SentinelStack(workdir, StackOptions()) as stack:
        recs = recordings(stack.sim.state, rng, size.recordings)
        for rec in rng.sample(recs, int(len(recs) * THROTTLED_SHARE)):
            rec.faults.rate_limited, rec.faults.retry_after_seconds = 2, 1
        signer = CallbackSender(stack.callback_url, auth_token=stack.token)
        prepared = interleave(lifecycle(signer, recs, stack.sim.base_url))
        prepared += rng.sample(prepared, int(len(prepared) * REPLAY_SHARE))
        seconds = size.failovers * (size.gap_seconds + size.down_seconds + FAILOVER_SECONDS) + size.gap_seconds
        failovers: list[Failover] = []
        readiness: list[dict] = []
        traffic = Traffic()
        traffic.record(stream_during(stack.callback_url, stack.token, prepared, seconds,
                                     lambda: kill_masters(stack, size, failovers, readiness)))
        settle(stack, traffic.accepted, timeout=240)
        judge(stack, result, traffic.accepted, signed={(p.recording_sid, p.status) for p in prepared})
        final = stack.readyz()
        if final != {"status": "ok", "broker": "up", "spool": "ok", "spool_depth": 0}:
            result.problems.append(f"ingest not ready after the failovers: {final}")
        if len(failovers) != size.failovers:
            result.problems.append(f"{len(failovers)} of {size.failovers} failovers completed")
        for n, failover in enumerate(failovers, 1):
            # What only the dead master held must have been queued again elsewhere (from the spool).
            elsewhere = stack.ledger(leaving_out=failover.history).pushes
            missing = sorted({push.event for push in failover.lacking} - set(elsewhere))
            if missing:
                result.problems.append(f"failover {n}: {len(missing)} events only the dead master held were "
                                       f"never queued again: {missing[:3]}")
        spooled = max((r.get("spool_depth", 0) for r in readiness), default=0)
        result.server_errors = traffic.server_errors
        result.injected = f"{size.failovers} master kill -9, promoted in " + ", ".join(
            f"{f.promoted_after:.1f}" for f in failovers) + " s"
        result.notes.append(f"callbacks {traffic.summary()}; spool held up to {spooled} while no replica "
                            "could acknowledge")
        for n, failover in enumerate(failovers, 1):
            result.notes.append(
                f"failover {n}: promoted {failover.promoted_after:.1f} s after the kill, old master back as a "
                f"replica {failover.rejoined_after:.1f} s after its restart; the replica lacked the old master's "
                f"last {len(failover.lacking)} of {failover.written_on_master} publications, written in the last "
                f"{failover.window_ms:.1f} ms before the kill, each queued again on the new master")
    return result


def kill_masters(stack: SentinelStack, size: Size, failovers: list[Failover], readiness: list[dict]) -> None:
    """SIGKILL whichever server is master `size.failovers` times, sampling ingest's readiness."""
    for _ in range(size.failovers):
        time.sleep(size.gap_seconds)
        failovers.append(stack.fail_over(size.down_seconds))
        for _ in range(4):
            readiness.append(stack.readyz())
            time.sleep(0.25)
