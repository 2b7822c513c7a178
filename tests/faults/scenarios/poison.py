"""Scenario 11: a recording whose archive kills its pool process every time, among ordinary ones.

Each time a worker starts on the poison recording, the scenario SIGKILLs that worker's pool
processes (as an OOM kill would): the threads worker processes of the default worker, whose
messages come back after the visibility timeout, or a prefork worker's pool children.
recvault must dead-letter it after a bounded number of deliveries, with the reason, and
archive everything else — never cycle forever.
"""

from __future__ import annotations

import random
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from recvault.launch.worker_group import RestartPolicy
from recvault.queue.writer import TASK_ID_NAMESPACE
from recvault.settings import Settings
from recvault.simulator.callbacks import CallbackSender
from recvault.simulator.recordings import Faults
from recvault.workers.delivery import MAX_DELIVERIES
from tests.faults.harness import Stack, StackOptions
from tests.faults.result import ScenarioResult
from tests.faults.traffic import Traffic, interleave, lifecycle, stream_during
from tests.faults.verdict import judge, settle
from tests.faults.workload import recordings

NAME = "11 poison message"


@dataclass(frozen=True)
class Size:
    recordings: int
    poison: int


# Each kill stops every process of the worker group. Its message comes back after the
# visibility timeout (plus kombu's restore sweep), and the group starts its processes again
# after a pause that doubles at each consecutive kill, up to the restart policy's longest.
# Budget for MAX_DELIVERIES + 1 deliveries of each poison recording, one after another, each
# paying both in full: the scenario stops as soon as every poison recording is dead-lettered.
VISIBILITY_TIMEOUT: int = Settings.model_fields["visibility_timeout_seconds"].default
RESTORE_SWEEP = 10


def killing_budget(size: Size) -> float:
    per_delivery = VISIBILITY_TIMEOUT + RestartPolicy().longest_pause + RESTORE_SWEEP
    return size.poison * (MAX_DELIVERIES + 1) * per_delivery


QUICK = Size(recordings=20, poison=1)
FULL = Size(recordings=100, poison=2)


def run(workdir: Path, size: Size, seed: int = 11) -> ScenarioResult:
    rng = random.Random(seed)
    budget = killing_budget(size)
    result = ScenarioResult(NAME, f"{size.poison} poison")
    with Stack(workdir, StackOptions()) as stack:
        recs = recordings(stack.sim.state, rng, size.recordings)
        poison = rng.sample([rec for rec in recs if rec.status == "completed"], size.poison)
        for rec in poison:
            # Two minutes of audio at 20 kB/s: every delivery is still downloading when the
            # scenario gets round to killing it, whatever else it is watching.
            rec.duration, rec.faults = 120, Faults(bytes_per_second=20_000)
        signer = CallbackSender(stack.callback_url, auth_token=stack.token)
        prepared = interleave(lifecycle(signer, recs, stack.sim.base_url))
        targets = {str(uuid.uuid5(TASK_ID_NAMESPACE, f"{rec.sid}:completed")): rec for rec in poison}
        kills: list[str] = []
        traffic = Traffic()
        traffic.record(stream_during(stack.callback_url, stack.token, prepared, 5,
                                     lambda: kill_poison(stack, targets, kills, deadline=time.monotonic() + budget)))
        settle(stack, traffic.accepted, timeout=budget)
        expected = {(rec.sid, "completed") for rec in poison}
        judge(stack, result, traffic.accepted, signed={(p.recording_sid, p.status) for p in prepared},
              expect_dead=expected)
        letters = stack.dead_letters()
        for rec in poison:
            letter = letters.get(f"{rec.sid}:completed")
            if letter is None or letter["error"] != "PoisonMessage":
                result.problems.append(f"poison {rec.sid} not dead-lettered as PoisonMessage: {letter}")
        result.server_errors = traffic.server_errors
        result.injected = f"{len(kills)} pool-process kills on {size.poison} poison recording(s)"
        result.notes.append(f"callbacks {traffic.summary()}; dead-lettered after {MAX_DELIVERIES} deliveries "
                            "ended by a kill")
    return result


def kill_poison(stack: Stack, targets: dict, kills: list[str], *, deadline: float) -> None:
    """Each time a worker receives a poison task again, kill its pool processes once it downloads."""
    letters_needed = {f"{rec.sid}:completed" for rec in targets.values()}
    deliveries: dict[tuple[str, str], int] = {}  # (worker, task id) → deliveries seen in its log
    while time.monotonic() < deadline and not letters_needed <= set(stack.dead_letters()):
        for worker in stack.workers:
            for task_id, rec in targets.items():
                count = stack.pool.received_count(worker, task_id)
                if count <= deliveries.get((worker.name, task_id), 0):
                    continue
                # This worker just took another delivery: kill it once the download is under way.
                started = rec.media_requests
                wait_until = time.monotonic() + 10
                while rec.media_requests == started and time.monotonic() < wait_until:
                    time.sleep(0.05)
                deliveries[(worker.name, task_id)] = count
                if stack.pool.kill_pool_processes(worker):
                    kills.append(task_id)
        time.sleep(0.1)
