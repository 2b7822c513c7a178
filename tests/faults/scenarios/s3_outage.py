"""Scenario 3: S3 (SeaweedFS) stopped, and killed, for a while during archiving."""

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
from tests.faults.workload import recordings, total_bytes

NAME = "3 S3 outage"


@dataclass(frozen=True)
class Size:
    recordings: int
    outages: int
    outage_seconds: float
    gap_seconds: float
    # The cap of the retry backoff: twelve retries must outlast the longest outage (a graceful
    # SeaweedFS stop can take 20 s on top of it), or the event is dead-lettered as designed.
    retry_backoff_max_seconds: int
    large_share: float = 0.3


QUICK = Size(recordings=16, outages=1, outage_seconds=5, gap_seconds=2, retry_backoff_max_seconds=4)
FULL = Size(recordings=150, outages=3, outage_seconds=15, gap_seconds=6, retry_backoff_max_seconds=10)


def run(workdir: Path, size: Size, seed: int = 3) -> ScenarioResult:
    rng = random.Random(seed)
    # A task may spend a while in S3 retries: the workers' heartbeats hold on to its message.
    options = StackOptions(delete_after_archive=True, retry_backoff_max_seconds=size.retry_backoff_max_seconds)
    result = ScenarioResult(NAME, f"{size.outages} outages")
    with Stack(workdir, options) as stack:
        recs = recordings(stack.sim.state, rng, size.recordings, large_share=size.large_share)
        signer = CallbackSender(stack.callback_url, auth_token=stack.token)
        prepared = interleave(lifecycle(signer, recs, stack.sim.base_url))
        seconds = size.outages * (size.outage_seconds + size.gap_seconds) + size.gap_seconds
        traffic, down = Traffic(), []
        traffic.record(stream_during(stack.callback_url, stack.token, prepared, seconds,
                                     lambda: outages(stack, size, down)))
        settle(stack, traffic.accepted, timeout=300)
        judge(stack, result, traffic.accepted, signed={(p.recording_sid, p.status) for p in prepared})
        retried = sum(line.count('"kind": "StorageUnavailable"') for path in stack.log_files()
                      if path.name.startswith("worker") for line in path.read_text(errors="replace").splitlines())
        result.server_errors = traffic.server_errors
        result.injected = (f"{size.outages} outages of {', '.join(f'{d:.0f}' for d in down)} s "
                           f"(stop and kill -9 in turn); {total_bytes(recs) / 1e6:.0f} MB")
        result.notes.append(f"callbacks {traffic.summary()}; {retried} task attempts failed on S3 and were retried; "
                            f"Twilio DELETEs {len(stack.sim.deletions)}, each checked against S3 first")
    return result


def outages(stack: Stack, size: Size, down: list[float]) -> None:
    """Take SeaweedFS away `size.outages` times, gracefully and with SIGKILL in turn."""
    for n in range(size.outages):
        time.sleep(size.gap_seconds)
        began = time.monotonic()
        take_down = stack.s3.stop if n % 2 == 0 else stack.s3.kill  # graceful, then SIGKILL
        take_down()
        time.sleep(size.outage_seconds)
        stack.s3.start()
        down.append(time.monotonic() - began)
