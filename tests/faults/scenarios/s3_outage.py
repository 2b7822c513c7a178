"""Scenario 3: S3 (SeaweedFS) stopped, and killed, for a while during archiving.

How long it waits is derived from recvault's retry policy, not guessed. A task that fails on
S3 runs again after a jittered backoff (workers.delivery: BACKOFF_BASE_SECONDS doubling up to
the cap, each delay drawn between half and all of its step), up to the shipped
RECVAULT_MAX_RETRIES times, and is dead-lettered after that. So:

* the stack's backoff cap is the smallest whose *shortest* retry window, at the shipped retry
  count, outlasts the longest S3 may be away: the outage, a graceful stop (SeaweedFS may take
  its time before the SIGKILL) and a restart as slow as S3_READY_SECONDS, a generous bound
  (a restart normally takes seconds; one took 45 s). Within that, recvault promises every
  event archived, none dead-lettered.
* the settle clock starts only once SeaweedFS is ready again, and waits one backoff cap (a
  task that failed just before S3 came back runs again within it), a visibility timeout (a
  message whose worker lost it) and the time to archive what piled up.
* should S3 still have been away longer than that window, the events whose retries ran out
  are in the dead-letter store with `StorageUnavailable`, as designed: the scenario replays
  them as the runbook says (`recvault dlq replay --all`) and they must then be archived.
"""

from __future__ import annotations

import random
import re
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from unittest import mock

from recvault.settings import DEFAULT_PROCESSES, Settings
from recvault.simulator.callbacks import CallbackSender
from recvault.workers import delivery
from tests.faults.harness import Stack, StackOptions
from tests.faults.result import ScenarioResult
from tests.faults.traffic import Traffic, interleave, lifecycle, stream_during
from tests.faults.verdict import judge, letters_by_event, settle
from tests.faults.workload import recordings, total_bytes

NAME = "3 S3 outage"
# Retries before a task is dead-lettered, and the visibility timeout: recvault's shipped defaults.
MAX_RETRIES: int = Settings.model_fields["max_retries"].default
VISIBILITY_TIMEOUT: int = Settings.model_fields["visibility_timeout_seconds"].default
# How long SeaweedFS may take to stop gracefully before it is killed (ChildProcess.stop's
# default), and to be ready again after a start: both generous bounds, not expectations.
S3_STOP_SECONDS = 30
S3_READY_SECONDS = 120
# Once S3 is back: time to archive what piled up, beyond the retry and redelivery delays.
ARCHIVE_SECONDS = 240
# Processes one `recvault worker` runs (the harness sets only its threads), and Celery's line
# for each once it consumes ("w1-2@host ready.").
WORKER_PROCESSES = DEFAULT_PROCESSES[Settings.model_fields["worker_pool"].default]
CONSUMING = re.compile(rb'"msg": "([^" ]+@[^" ]+) ready\."')


@dataclass(frozen=True)
class Size:
    recordings: int
    outages: int
    outage_seconds: float
    gap_seconds: float
    large_share: float = 0.3


QUICK = Size(recordings=16, outages=1, outage_seconds=5, gap_seconds=2)
FULL = Size(recordings=150, outages=3, outage_seconds=15, gap_seconds=6)


@dataclass
class Outage:
    """One outage as it happened: seconds to stop, seconds down in all, seconds the start took."""

    stopping: float = 0.0
    away: float = 0.0
    starting: float = 0.0


@dataclass
class Outages:
    done: list[Outage] = field(default_factory=list)


def retry_window(max_retries: int, cap: float) -> tuple[float, float]:
    """The shortest and the longest a failing task keeps retrying: its backoffs summed, each drawn
    at the bottom, then the top, of workers.delivery's jitter."""
    def total(pick: str) -> float:
        draw = SimpleNamespace(uniform=lambda low, high: low if pick == "low" else high)
        with mock.patch.object(delivery, "random", draw):
            return sum(delivery.backoff(retry, cap=cap) for retry in range(max_retries))
    return total("low"), total("high")


def longest_away(size: Size) -> float:
    """The longest S3 may be unreachable in one outage before the scenario gives up on it."""
    return S3_STOP_SECONDS + size.outage_seconds + S3_READY_SECONDS


def backoff_cap(size: Size) -> int:
    """The smallest backoff cap whose shortest retry window outlasts `longest_away(size)`."""
    cap = 1
    while retry_window(MAX_RETRIES, cap)[0] < longest_away(size):
        cap += 1
    return cap


def settle_seconds(size: Size) -> float:
    """How long, once S3 is ready again, recvault may take to have settled every event."""
    return backoff_cap(size) + VISIBILITY_TIMEOUT + ARCHIVE_SECONDS


def run(workdir: Path, size: Size, seed: int = 3) -> ScenarioResult:
    rng = random.Random(seed)
    cap = backoff_cap(size)
    shortest, _ = retry_window(MAX_RETRIES, cap)
    # A task may spend a while in S3 retries: the workers' heartbeats hold on to its message.
    options = StackOptions(delete_after_archive=True, max_retries=MAX_RETRIES, retry_backoff_max_seconds=cap)
    result = ScenarioResult(NAME, f"{size.outages} outages")
    with Stack(workdir, options) as stack:
        if not every_worker_process_consumes(stack):
            result.notes.append(f"not every worker showed {WORKER_PROCESSES} processes consuming before the outages")
        recs = recordings(stack.sim.state, rng, size.recordings, large_share=size.large_share)
        signer = CallbackSender(stack.callback_url, auth_token=stack.token)
        prepared = interleave(lifecycle(signer, recs, stack.sim.base_url))
        seconds = size.outages * (size.outage_seconds + size.gap_seconds) + size.gap_seconds
        traffic, outages = Traffic(), Outages()
        # Returns once the stream has ended and SeaweedFS is ready again after the last outage.
        traffic.record(stream_during(stack.callback_url, stack.token, prepared, seconds,
                                     lambda: take_s3_away(stack, size, outages)))
        waited = settle(stack, traffic.accepted, timeout=settle_seconds(size))
        replayed = replay_if_out_of_retries(stack, traffic.accepted, outages, shortest, size)
        judge(stack, result, traffic.accepted, signed={(p.recording_sid, p.status) for p in prepared})
        retried = sum(line.count('"kind": "StorageUnavailable"') for path in stack.log_files()
                      if path.name.startswith("worker") for line in path.read_text(errors="replace").splitlines())
        result.server_errors = traffic.server_errors
        result.injected = (f"{size.outages} outages of {', '.join(f'{o.away:.0f}' for o in outages.done)} s "
                           f"(stop and kill -9 in turn); {total_bytes(recs) / 1e6:.0f} MB")
        result.notes.append(
            f"callbacks {traffic.summary()}; {retried} task attempts failed on S3 and were retried; "
            f"Twilio DELETEs {len(stack.sim.deletions)}, each checked against S3 first")
        result.notes.append(
            f"retry policy: {MAX_RETRIES} retries, backoff cap {cap} s, so at least {shortest:.0f} s of "
            f"retries against S3 away at most {longest_away(size):.0f} s; S3 stopped in "
            f"{', '.join(f'{o.stopping:.1f}' for o in outages.done)} s and was ready "
            f"{', '.join(f'{o.starting:.1f}' for o in outages.done)} s after each start; settled "
            f"{waited:.0f} s after S3 was back (bound {settle_seconds(size):.0f} s)"
            + (f"; {replayed} event(s) out of retries replayed from the dead-letter store" if replayed else ""))
    return result


def every_worker_process_consumes(stack: Stack, timeout: float = 60) -> bool:
    """Wait until each worker's every process consumes. A worker starts its other processes once
    the first consumes, and one whose first start meets S3 out of reach stops them all (exit 1):
    an outage begun before then would test the start-up, not the outage."""
    deadline = time.monotonic() + timeout
    while True:
        nodes = [set(CONSUMING.findall(worker.log_path.read_bytes())) if worker.log_path else set()
                 for worker in stack.workers]
        if all(len(found) >= WORKER_PROCESSES for found in nodes):
            return True
        if time.monotonic() > deadline:
            return False
        time.sleep(0.2)


def take_s3_away(stack: Stack, size: Size, outages: Outages) -> None:
    """Take SeaweedFS away `size.outages` times, gracefully and with SIGKILL in turn; each time
    return only once it is ready again (LaunchError if it is not within S3_READY_SECONDS)."""
    for n in range(size.outages):
        time.sleep(size.gap_seconds)
        outage = Outage()
        began = time.monotonic()
        if n % 2 == 0:
            stack.s3.stop(timeout=S3_STOP_SECONDS)  # graceful, SIGKILL after the bound
        else:
            stack.s3.kill()
        outage.stopping = time.monotonic() - began
        time.sleep(size.outage_seconds)
        starting = time.monotonic()
        stack.s3.start(timeout=S3_READY_SECONDS)
        outage.starting = time.monotonic() - starting
        outage.away = time.monotonic() - began
        outages.done.append(outage)


def replay_if_out_of_retries(stack: Stack, accepted: set, outages: Outages, shortest: float, size: Size) -> int:
    """When S3 was away longer than the shortest retry window, replay the events whose retries ran
    out (as the runbook says) and settle again; the number replayed. Otherwise leave any letter
    for the verdict: within the window, a dead letter is a failure."""
    if not outages.done or max(o.away for o in outages.done) < shortest:
        return 0
    out_of_retries = [event for event, letter in letters_by_event(stack).items()
                      if event in accepted and letter.get("error") == "StorageUnavailable"]
    if not out_of_retries:
        return 0
    subprocess.run([sys.executable, "-m", "recvault.cli", "dlq", "replay", "--all"], env=stack.environment(),
                   cwd=stack.dir, check=True, capture_output=True, timeout=120)
    settle(stack, accepted, timeout=settle_seconds(size))
    return len(out_of_retries)
