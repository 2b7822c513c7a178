"""Scenario 1: `kill -9` of workers at random moments while N recordings are archived."""

from __future__ import annotations

import random
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from recvault.simulator.callbacks import CallbackSender
from tests.faults.harness import Stack, StackOptions
from tests.faults.result import ScenarioResult
from tests.faults.traffic import Traffic, interleave, lifecycle, stream_during
from tests.faults.verdict import judge, settle
from tests.faults.workload import recordings, total_bytes

NAME = "1 worker kill -9"
# Seconds a kill round takes on average: the pause before it and a worker's restart.
ROUND_SECONDS = 2.5


@dataclass(frozen=True)
class Size:
    recordings: int
    kills: int
    large_share: float = 0.4


QUICK = Size(recordings=20, kills=4)
FULL = Size(recordings=200, kills=15)


def run(workdir: Path, size: Size, seed: int = 1) -> ScenarioResult:
    rng = random.Random(seed)
    options = StackOptions(visibility_timeout=6, delete_after_archive=True)
    result = ScenarioResult(NAME, f"{size.kills} kills")
    with Stack(workdir, options) as stack:
        recs = recordings(stack.sim.state, rng, size.recordings, large_share=size.large_share)
        signer = CallbackSender(stack.callback_url, auth_token=stack.token)
        prepared = interleave(lifecycle(signer, recs, stack.sim.base_url))
        kills: Counter = Counter()
        traffic = Traffic()
        # The callbacks are spread over the kill rounds, so that kills land on work in progress.
        traffic.record(stream_during(stack.callback_url, stack.token, prepared,
                                     size.kills * ROUND_SECONDS * 0.8,
                                     lambda: kill_at_random(stack, rng, size.kills, kills)))
        # kombu hands a dead worker's messages out again once they are older than the
        # visibility timeout, when a consumer starts (otherwise every ~100 s): a supervisor
        # restarting the worker does exactly that.
        time.sleep(options.visibility_timeout + 1)
        stack.pool.restart(stack.workers[0])
        settle(stack, traffic.accepted, timeout=300)
        judge(stack, result, traffic.accepted, signed={(p.recording_sid, p.status) for p in prepared})
        result.server_errors = traffic.server_errors
        result.injected = (f"{kills['group']} worker kills, {kills['child']} pool-process kills "
                           f"({kills['mid-upload']} mid-upload); {total_bytes(recs) / 1e6:.0f} MB")
        result.notes.append(f"callbacks {traffic.summary()}; {stack.pool.redelivered()} tasks delivered again "
                            f"after a kill; Twilio DELETEs {len(stack.sim.deletions)}")
    return result


def kill_at_random(stack: Stack, rng: random.Random, count: int, done: Counter) -> None:
    """SIGKILL a worker's process group or one pool process, `count` times; every third kill
    waits for a multipart upload in progress and kills every worker."""
    while done["group"] + done["child"] < count:
        time.sleep(rng.uniform(0.3, 2.0))
        if (done["group"] + done["child"]) % 3 == 2 and _upload_in_progress(stack, timeout=3.0):
            done["mid-upload"] += 1
            victims = stack.workers
        else:
            victims = [rng.choice(stack.workers)]
        if len(victims) == 1 and rng.random() < 0.25 and stack.pool.kill_pool_process(victims[0]):
            done["child"] += 1  # the worker's main process notices and starts a new one
            continue
        stack.pool.kill_workers(victims)
        done["group"] += len(victims)


def _upload_in_progress(stack: Stack, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if stack.view.snapshot_uploads():
            return True
        time.sleep(0.05)
    return False
