"""Scenario 13: the Sentinel-managed master is SIGKILLed mid-stream and never comes back.

One master, one replica, three sentinels. Halfway through the callbacks the master is
SIGKILLed and stays dead, as a lost machine would: Sentinel promotes the replica, which then
has no replica of its own, so no WAIT can ever be acknowledged again. Ingest and the worker
run on the shipped defaults (one `recvault serve`, one `recvault worker` with its default
processes and threads), and nothing outside them restarts either.

Archiving must resume within RESUME_SECONDS of the promotion, with nothing lost and nothing
archived twice; ingest keeps copies of what no replica holds and says so on /readyz and
/metrics.
"""

from __future__ import annotations

import random
import re
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from recvault.launch.process import Component, log_tail
from recvault.simulator.callbacks import CallbackSender
from tests.faults.harness import StackOptions
from tests.faults.ledger import aof_files, pushes
from tests.faults.result import ScenarioResult
from tests.faults.sentinel_stack import REPLICA_CATCH_UP_SECONDS, SentinelStack
from tests.faults.traffic import Event, Traffic, interleave, lifecycle, stream_during
from tests.faults.verdict import QUIET_SECONDS, judge, resolved
from tests.faults.worker_pool import WorkerPool
from tests.faults.workload import recordings

NAME = "13 Master lost"
# Share of callbacks Twilio delivers twice.
REPLAY_SHARE = 0.1
# Seconds from the promotion within which archiving must resume.
RESUME_SECONDS = 30
# The harness's delivery settings (shorter timeouts, retries and delays than shipped) that
# this scenario leaves at their defaults; what remains only points recvault at this stack.
HARNESS_TUNING = ("RECVAULT_PUBLISH_TIMEOUT_SECONDS", "RECVAULT_REDIS_CONNECT_TIMEOUT_SECONDS",
                  "RECVAULT_MAX_RETRIES", "RECVAULT_RETRY_BACKOFF_MAX_SECONDS", "RECVAULT_NOT_FOUND_GRACE_SECONDS",
                  "RECVAULT_PRICE_REFRESH_SECONDS", "RECVAULT_DELETE_AFTER_ARCHIVE", "RECVAULT_S3_PART_SIZE_MIB")
# What a worker that died on the failover left in its log, most telling first.
# (JSON log lines: a message ends at the first quote not escaped.)
FATAL = (re.compile(r'Unrecoverable error: (?:[^"\\\n]|\\.){0,300}'), re.compile(r'\w+Error: (?:[^"\\\n]|\\.){0,300}'))
UNREPLICATED_METRIC = re.compile(r"^recvault_broker_unreplicated_callbacks (\S+)$", re.M)


@dataclass(frozen=True)
class Size:
    recordings: int
    seconds: float  # callbacks stream in this long; the master dies halfway
    settle_seconds: float  # how long archiving may take to finish once the stream ends


QUICK = Size(recordings=40, seconds=16, settle_seconds=90)
FULL = Size(recordings=200, seconds=60, settle_seconds=180)


@dataclass
class Loss:
    """The master's loss, as the scenario saw it."""

    killed_at: float = 0.0  # wall clock
    promoted_after: float | None = None
    dead_dir: Path | None = None
    written_on_master: int = 0
    lacking: list = field(default_factory=list)  # the dead master's publications its replica never got
    readiness: list[tuple[float, dict]] = field(default_factory=list)  # (wall clock, /readyz)

    @property
    def promoted_at(self) -> float | None:
        return None if self.promoted_after is None else self.killed_at + self.promoted_after


class UnsupervisedPool(WorkerPool):
    """Workers nobody starts again: one that stops stays stopped."""

    def start(self) -> None:
        self.start_workers(self.workers)


class LostMasterStack(SentinelStack):
    """The Sentinel stack with one `recvault worker` on its defaults and no supervisor."""

    def __init__(self, workdir: Path) -> None:
        super().__init__(workdir, StackOptions(workers=0))
        self.pool = UnsupervisedPool([])
        self.worker: Component | None = None

    def environment(self) -> dict[str, str]:
        env = super().environment()
        for name in HARNESS_TUNING:
            env.pop(name, None)
        return env

    def start(self) -> LostMasterStack:
        super().start()
        self.worker = Component("worker", ["worker"], self.environment(), log_path=self.dir / "logs" / "worker.log")
        self.pool.workers.append(self.worker)
        self.pool.start_workers([self.worker])
        return self

    def metrics(self) -> str:
        request = urllib.request.Request(f"{self.ingest_url}/metrics")
        with urllib.request.build_opener(urllib.request.ProxyHandler({})).open(request, timeout=5) as response:
            return response.read().decode()


def run(workdir: Path, size: Size, seed: int = 13) -> ScenarioResult:
    rng = random.Random(seed)
    result = ScenarioResult(NAME, "master kill -9, never restarted")
    with LostMasterStack(workdir) as stack:
        recs = recordings(stack.sim.state, rng, size.recordings)
        signer = CallbackSender(stack.callback_url, auth_token=stack.token)
        prepared = interleave(lifecycle(signer, recs, stack.sim.base_url))
        prepared += rng.sample(prepared, int(len(prepared) * REPLAY_SHARE))
        loss = Loss()
        traffic = Traffic()
        traffic.record(stream_during(stack.callback_url, stack.token, prepared, size.seconds,
                                     lambda: lose_master(stack, size, loss)))
        streamed_at = time.time()
        waited = settle_while_worker_lives(stack, traffic.accepted, timeout=size.settle_seconds)
        judge(stack, result, traffic.accepted, signed={(p.recording_sid, p.status) for p in prepared})
        result.server_errors = traffic.server_errors
        check(stack, result, traffic, loss, streamed_at, waited)
    return result


def lose_master(stack: LostMasterStack, size: Size, loss: Loss) -> None:
    """SIGKILL the master halfway through the stream, wait for the promotion, sample /readyz."""
    started = time.monotonic()
    time.sleep(size.seconds / 2)
    master = stack.setup.master
    replica = stack.setup.replica_of(master)
    master.kill()
    loss.killed_at, loss.dead_dir = time.time(), master.dir
    time.sleep(REPLICA_CATCH_UP_SECONDS)
    replica_has = {push.tag for push in pushes(aof_files(replica.dir, rewritten_ok=True), stack.queue)}
    written = list(pushes(aof_files(master.dir, rewritten_ok=True), stack.queue))
    loss.written_on_master = len(written)
    loss.lacking = [push for push in written if push.tag not in replica_has]
    try:
        loss.promoted_after = stack.setup.wait_failover(master.port, timeout=60)
    except AssertionError:
        return
    while time.monotonic() - started < size.seconds:
        try:
            loss.readiness.append((time.time(), stack.readyz()))
        except OSError as error:  # a 503 too: the check below reports what it saw
            loss.readiness.append((time.time(), {"error": repr(error)}))
        time.sleep(0.5)


def settle_while_worker_lives(stack: LostMasterStack, events: set[Event], *, timeout: float) -> float:
    """Wait until every event is resolved and the queue idle a while; stop early if the worker is gone."""
    started = time.monotonic()
    quiet_since: float | None = None
    while time.monotonic() - started < timeout:
        try:
            done = resolved(stack, events) == events and stack.queue_idle()
        except Exception:  # a service may be coming back; try again
            done = False
        if not done:
            quiet_since = None
            if stack.worker is not None and not stack.worker.running:
                break  # nothing restarts it: nothing more will be archived
        elif quiet_since is None:
            quiet_since = time.monotonic()
        elif time.monotonic() - quiet_since >= QUIET_SECONDS:
            break
        time.sleep(0.5)
    return time.monotonic() - started


def archive_times(stack: LostMasterStack) -> list[tuple[float, float]]:
    """(callback received, archived) wall-clock times of every document in the bucket."""
    keys = stack.view.list_keys("metadata/") + stack.view.list_keys("events/")

    def times(key: str) -> tuple[float, float]:
        document = stack.view.document(key)
        done = document.get("archived_at") or document.get("recorded_at")
        return _epoch(document["received_at"]), _epoch(done)

    with ThreadPoolExecutor(4) as pool:
        return list(pool.map(times, keys))


def _epoch(iso: str) -> float:
    return datetime.fromisoformat(iso).timestamp()


def check(stack: LostMasterStack, result: ScenarioResult, traffic: Traffic, loss: Loss, streamed_at: float,
          waited: float) -> None:
    """The scenario's own checks and figures, beside the verdict's."""
    promoted_at = loss.promoted_at
    if promoted_at is None or loss.dead_dir is None:
        result.problems.append("Sentinel promoted no replica within 60 s of the master's loss")
        return
    result.injected = f"master kill -9, never restarted; promoted in {loss.promoted_after:.1f} s"

    # Ingest: every accepted callback reached the surviving history, whatever the worker did.
    surviving = stack.ledger(leaving_out=loss.dead_dir).pushes
    missing = sorted(traffic.accepted - set(surviving))
    if missing:
        result.problems.append(f"{len(missing)} accepted callbacks never reached the new master: {missing[:3]}")
    unqueued = sorted({push.event for push in loss.lacking} - set(surviving))
    if unqueued:
        result.problems.append(f"{len(unqueued)} events only the dead master held were never queued again: "
                               f"{unqueued[:3]}")

    # Ingest said what it was doing: degraded, copies held, and the gauge shows them.
    after = [body for at, body in loss.readiness if at > promoted_at]
    held = max((body.get("unreplicated", 0) for _, body in loss.readiness), default=0)
    if not any(body.get("replication") == "unacknowledged" and body.get("status") == "degraded" for body in after):
        result.problems.append(f"/readyz never reported unacknowledged replication after the promotion: {after[-3:]}")
    final = stack.readyz()
    if (final.get("status"), final.get("broker"), final.get("spool_depth"), final.get("replication")) != (
            "degraded", "up", 0, "unacknowledged") or not final.get("unreplicated"):
        result.problems.append(f"ingest's final readiness is not 'degraded, copies held, nothing waiting': {final}")
    gauge = UNREPLICATED_METRIC.search(stack.metrics())
    if gauge is None or float(gauge.group(1)) != final.get("unreplicated"):
        result.problems.append(f"recvault_broker_unreplicated_callbacks is {gauge and gauge.group(1)}, "
                               f"/readyz says {final.get('unreplicated')}")

    # Archiving resumed: the first callback received after the kill, archived.
    times = archive_times(stack)
    after_kill = [done for received, done in times if received > loss.killed_at]
    resumed = min(after_kill) - promoted_at if after_kill else None
    caught_up = max(after_kill) - promoted_at if after_kill else None
    if resumed is None:
        result.problems.append("nothing received after the master's loss was ever archived")
    elif resumed > RESUME_SECONDS:
        result.problems.append(f"archiving resumed {resumed:.1f} s after the promotion (promised: {RESUME_SECONDS} s)")

    worker = stack.worker
    assert worker is not None
    worker_state = "running" if worker.running else f"exited with status {worker.process and worker.process.returncode}"
    if not worker.running:
        log = worker.log_path.read_text(errors="replace") if worker.log_path else ""
        found = [match.replace('\\"', '"') for pattern in FATAL for match in pattern.findall(log)]
        result.problems.append(f"the worker {worker_state} after the master's loss (nothing restarts it): "
                               f"{found[0] if found else log_tail(worker.log_path, 5)}")

    result.notes.append(
        f"callbacks {traffic.summary()}; promoted {loss.promoted_after:.1f} s after the kill; archiving resumed "
        + (f"{resumed:.1f} s after the promotion" if resumed is not None else "never")
        + (f", every callback received after the kill archived {caught_up:.1f} s after it"
           if caught_up is not None else "")
        + f"; the stream ended {streamed_at - promoted_at:.1f} s after the promotion, settled {waited:.0f} s later")
    result.notes.append(
        f"the replica lacked the dead master's last {len(loss.lacking)} of {loss.written_on_master} publications; "
        f"ingest held up to {held} callbacks no replica acknowledged (finally {final.get('unreplicated')}); "
        f"the worker {worker_state}")
