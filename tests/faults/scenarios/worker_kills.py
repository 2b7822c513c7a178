"""Scenario 1: `kill -9` of workers at random moments while N recordings are archived."""

from __future__ import annotations

import random
import time
import uuid
from collections import Counter
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from statistics import median

from recvault.queue.writer import TASK_ID_NAMESPACE
from recvault.simulator.callbacks import CallbackSender
from tests.faults.harness import Stack, StackOptions
from tests.faults.result import ScenarioResult
from tests.faults.traffic import Traffic, interleave, lifecycle, stream_during
from tests.faults.verdict import judge, settle
from tests.faults.workload import recordings, total_bytes

NAME = "1 worker kill -9"
# The promise, with the shipped defaults: a killed worker's recording is archived within this.
RECOVERY_SECONDS = 60
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
    options = StackOptions(delete_after_archive=True)
    result = ScenarioResult(NAME, f"{size.kills} kills")
    with Stack(workdir, options) as stack:
        recs = recordings(stack.sim.state, rng, size.recordings, large_share=size.large_share)
        signer = CallbackSender(stack.callback_url, auth_token=stack.token)
        prepared = interleave(lifecycle(signer, recs, stack.sim.base_url))
        kills: Counter = Counter()
        held: list[tuple[float, set[str]]] = []  # (kill time, task ids the victims held)
        traffic = Traffic()
        # The callbacks are spread over the kill rounds, so that kills land on work in progress.
        traffic.record(stream_during(stack.callback_url, stack.token, prepared,
                                     size.kills * ROUND_SECONDS * 0.8,
                                     lambda: kill_at_random(stack, rng, size.kills, kills, held)))
        # With the shipped defaults: a dead worker's messages go to another worker one
        # visibility timeout (30 s) after its heartbeat's last beat; nothing restarts anything here.
        settle(stack, traffic.accepted, timeout=300)
        judge(stack, result, traffic.accepted, signed={(p.recording_sid, p.status) for p in prepared})
        result.server_errors = traffic.server_errors
        result.injected = (f"{kills['group']} worker kills, {kills['child']} pool-process kills "
                           f"({kills['mid-upload']} mid-upload); {total_bytes(recs) / 1e6:.0f} MB")
        recovery = recovery_seconds(stack, held, recs)
        result.notes.append(f"callbacks {traffic.summary()}; {stack.pool.redelivered()} tasks delivered again "
                            f"after a kill; Twilio DELETEs {len(stack.sim.deletions)}")
        if recovery:
            result.notes.append(f"archived after the kill that interrupted it: p50 {median(recovery):.1f} s, "
                                f"max {max(recovery):.1f} s over {len(recovery)} recordings")
            if max(recovery) > RECOVERY_SECONDS:
                result.problems.append(f"a killed worker's recording took {max(recovery):.1f} s to be archived")
    return result


def kill_at_random(stack: Stack, rng: random.Random, count: int, done: Counter,
                   held: list[tuple[float, set[str]]]) -> None:
    """SIGKILL a worker's process group or one pool process, `count` times; every third kill
    waits for a multipart upload in progress and kills every worker."""
    while done["group"] + done["child"] < count:
        time.sleep(rng.uniform(0.3, 2.0))
        if (done["group"] + done["child"]) % 3 == 2 and _upload_in_progress(stack, timeout=3.0):
            done["mid-upload"] += 1
            victims = stack.workers
        else:
            victims = [rng.choice(stack.workers)]
        held.append((time.time(), set().union(*(stack.pool.in_flight(victim) for victim in victims))))
        if len(victims) == 1 and rng.random() < 0.25 and stack.pool.kill_pool_process(victims[0]):
            done["child"] += 1  # the worker's main process notices and starts a new one
            continue
        stack.pool.kill_workers(victims)
        done["group"] += len(victims)


def recovery_seconds(stack: Stack, held: list[tuple[float, set[str]]], recs: list) -> list[float]:
    """For each completed recording a kill interrupted: seconds from that kill to its archive."""
    task_of = {str(uuid.uuid5(TASK_ID_NAMESPACE, f"{rec.sid}:completed")): rec.sid for rec in recs}
    archived = {}
    for key in stack.view.list_keys("metadata/"):
        document = stack.view.document(key)
        archived[document["sid"]] = datetime.fromisoformat(document["archived_at"]).timestamp()
    seconds = []
    for killed_at, tasks in held:
        for task_id in tasks:
            sid = task_of.get(task_id)
            if sid in archived and archived[sid] > killed_at:
                seconds.append(archived[sid] - killed_at)
    return seconds


def _upload_in_progress(stack: Stack, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if stack.view.snapshot_uploads():
            return True
        time.sleep(0.05)
    return False
