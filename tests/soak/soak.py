"""The soak: `recvault serve` and `recvault worker` on their defaults under a steady stream of signed callbacks.

A private Redis (the shipped deploy/redis/redis.conf), SeaweedFS with the bucket set up by
`recvault init-bucket` as Compose does, and the Twilio simulator in a process of its own,
answering like Twilio over the internet: a quarter of a second before every answer and each
media file streamed at 2 MB/s. Ingest and the worker get nothing but where those services
are (and a free port for the worker's /metrics, which would otherwise take the fixed 9808).

For SECONDS the simulator's `CallbackSender` (Twilio's timeouts and its one retry) sends the
callbacks of RATE new recordings a second: every `completed`; for a third of them an
`in-progress` first; for one in twenty the `completed` again a few seconds later (the same
request, as Twilio repeats it). Most recordings last a minute (mono or dual); one in twenty
ten minutes (19.2 MB, a multipart upload). Every 2 s the RSS of ingest's process tree, the
worker's and Redis's is sampled, with Redis's dataset size and the queue's length.

When the stream ends, the scenario waits until every accepted event is in the bucket and
the queue is idle, then checks each was archived exactly once: one metadata document (its
SHA-256 and size the simulator's), one media object of one version and one `archived` audit
record per `completed`, one event document per other status; ingest queued each once (read
back from Redis's AOF); nothing dead-lettered, no unfinished upload, every callback answered
2xx. Stored media bytes are hashed again for a sample.

Memory is *flat* when, after the first third (warm-up), the median RSS over the last third is
within FLAT_TOLERANCE of the median over the second third. For Redis the data it is designed
to hold for a while (dedup keys for an hour, delivery counts for a day, ledger rows until
beat copies them to S3) grows with the callbacks: there the growth of its dataset is allowed
on top, and reported per callback.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path

import psutil
import redis

from bench.stats import percentile
from bench.worker_log import WorkerLog
from recvault.launch.process import Component
from recvault.launch.services import RedisServer, SeaweedFS, free_port
from recvault.layout import DLQ_KEY
from recvault.simulator.callbacks import CallbackResult, CallbackSender, PreparedCallback, callback_params
from recvault.simulator.control import recording_to_json
from recvault.simulator.media import media_sha256, media_size
from recvault.simulator.recordings import Faults, SimRecording, new_sid
from tests.faults.archive_view import ArchiveView, Snapshot
from tests.faults.ledger import LedgerError, QueueLedger

DEFAULT_SECONDS = 600.0
DEFAULT_RATE = 2.0  # new recordings a second
# Twilio over the internet: seconds before every resource, media and delete answer; one stream's bandwidth.
TWILIO_LATENCY_SECONDS = 0.25
TWILIO_BYTES_PER_SECOND = 2_000_000
# (share, channels, seconds) of the recordings.
MIX = ((0.475, 1, 60), (0.475, 2, 60), (0.05, 2, 600))
IN_PROGRESS_SHARE = 1 / 3
REPEAT_SHARE = 0.05
SAMPLE_SECONDS = 2.0
FLAT_TOLERANCE = 0.10
# What Redis may keep per accepted callback (dedup key, delivery count, ledger row: a few hundred
# bytes measured, docs/performance.md); beyond it the dataset grows with something it should not.
REDIS_DATASET_BYTES_PER_CALLBACK = 1500
# Once the stream ends: at most this long to archive what is still queued or in flight.
DRAIN_SECONDS = 300
HASHED_SAMPLE = 20
BUCKET = "recvault"
QUEUE = "recvault"
_LOCAL = urllib.request.build_opener(urllib.request.ProxyHandler({}))


@dataclass
class Sample:
    """One moment of the run, in seconds since the stream began."""

    at: float
    ingest_rss: int
    worker_rss: int
    redis_rss: int
    redis_dataset: int
    queued: int
    sent: int  # callbacks sent so far


@dataclass
class Flatness:
    """Median RSS over the second and the last third of the stream, and whether that is flat."""

    second_third_mb: float
    last_third_mb: float
    growth_percent: float
    allowed_mb: float
    slope_mb_per_minute: float
    flat: bool


@dataclass
class SoakResult:
    seconds: float
    rate: float
    recordings: int = 0
    callbacks_sent: int = 0
    accepted: int = 0
    refused: dict[str, int] = field(default_factory=dict)
    answer_p50_ms: float = 0.0
    answer_p99_ms: float = 0.0
    archive_lag_p50_s: float = 0.0
    archive_lag_p99_s: float = 0.0
    drained_in_s: float | None = None
    archived_once: int = 0
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    memory: dict[str, Flatness] = field(default_factory=dict)
    redis_dataset_bytes_per_callback: float = 0.0
    redis_keys_at_end: int = 0
    samples: list[Sample] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems and all(f.flat for f in self.memory.values())

    def as_dict(self) -> dict:
        return asdict(self)

    def summary(self) -> str:
        lines = [
            f"soak: {self.seconds:.0f} s at {self.rate:g} recordings/s: {self.recordings} recordings, "
            f"{self.callbacks_sent} callbacks sent, {self.accepted} events accepted, refused {self.refused or 'none'}",
            f"answers p50 {self.answer_p50_ms} ms, p99 {self.answer_p99_ms} ms; callback → archived p50 "
            f"{self.archive_lag_p50_s} s, p99 {self.archive_lag_p99_s} s; drained {self.drained_in_s} s after "
            f"the stream; archived exactly once: {self.archived_once} of {self.accepted}",
        ]
        for name, f in self.memory.items():
            lines.append(f"{name}: median RSS {f.second_third_mb} MB (second third) → {f.last_third_mb} MB (last "
                         f"third), {f.growth_percent:+.1f} % (allowed {f.allowed_mb} MB), slope "
                         f"{f.slope_mb_per_minute:+.2f} MB/min: {'flat' if f.flat else 'NOT FLAT'}")
        lines.append(f"redis: dataset +{self.redis_dataset_bytes_per_callback:.0f} bytes per callback sent, "
                     f"{self.redis_keys_at_end} keys at the end")
        lines += [f"note: {note}" for note in self.notes]
        lines += [f"PROBLEM: {problem}" for problem in self.problems]
        return "\n".join(lines)


# --- the stack -------------------------------------------------------------------
@dataclass
class SoakStack:
    dir: Path
    redis: RedisServer
    s3: SeaweedFS
    sim: Component
    sim_url: str
    account_sid: str
    token: str
    ingest: Component | None = None
    worker: Component | None = None
    ingest_port: int = 0

    @property
    def broker_url(self) -> str:
        return self.redis.url + "/0"

    @property
    def callback_url(self) -> str:
        return f"http://127.0.0.1:{self.ingest_port}/twilio/recording-status"

    def env(self) -> dict[str, str]:
        """Where the services are, and nothing else: every other setting is recvault's default."""
        base = {k: v for k, v in os.environ.items() if not k.startswith(("RECVAULT_", "AWS_"))}
        return {**base,
                "RECVAULT_TWILIO_ACCOUNT_SID": self.account_sid,
                "RECVAULT_TWILIO_AUTH_TOKENS": self.token,
                "RECVAULT_TWILIO_API_BASE_URL": self.sim_url,
                "RECVAULT_BROKER_URL": self.broker_url,
                "RECVAULT_S3_ENDPOINT_URL": self.s3.s3_url,
                "RECVAULT_DATA_DIR": str(self.dir / "data"),
                # The default port (9808) is fixed; another worker on this host may hold it.
                "RECVAULT_WORKER_METRICS_PORT": str(free_port())}


@contextmanager
def soak_stack(keep: bool = False) -> Iterator[SoakStack]:
    workdir = Path(tempfile.mkdtemp(prefix="recvault-soak-"))
    account_sid, token = new_sid("AC"), secrets.token_hex(16)
    started: list = []
    try:
        redis_server = RedisServer(workdir / "redis").start()
        started.append(redis_server)
        s3 = SeaweedFS(workdir / "s3").start()
        started.append(s3)
        port = free_port()
        sim_url = f"http://127.0.0.1:{port}"
        env = {k: v for k, v in os.environ.items() if not k.startswith("RECVAULT_")}
        sim = Component("simulator", ["simulate", "serve", "--port", str(port), "--account-sid", account_sid,
                                      "--auth-token", token], env, log_path=workdir / "logs" / "simulator.log",
                        ready_url=f"{sim_url}/_sim/requests").start(timeout=60)
        started.append(sim)
        stack = SoakStack(workdir, redis_server, s3, sim, sim_url, account_sid, token, ingest_port=free_port())
        # The bucket as Compose sets it up: `recvault init-bucket` (Object Lock, retention, encryption).
        done = subprocess.run([sys.executable, "-m", "recvault.cli", "init-bucket"], env=stack.env(),
                              capture_output=True, text=True, timeout=120, cwd=workdir)
        if done.returncode != 0:
            raise RuntimeError(f"init-bucket failed: {done.stdout}{done.stderr}")
        stack.ingest = Component("ingest", ["serve", "--host", "127.0.0.1", "--port", str(stack.ingest_port)],
                                 stack.env(), log_path=workdir / "logs" / "ingest.log",
                                 ready_url=f"http://127.0.0.1:{stack.ingest_port}/readyz").start(timeout=90)
        started.append(stack.ingest)
        stack.worker = Component("worker", ["worker"], stack.env(), log_path=workdir / "logs" / "worker.log")
        stack.worker.start(wait=False)
        started.append(stack.worker)
        _wait_worker_ready(stack.worker)
        yield stack
    finally:
        for service in reversed(started):
            service.stop()
        if not keep:
            shutil.rmtree(workdir, ignore_errors=True)


def _wait_worker_ready(worker: Component, timeout: float = 120) -> None:
    assert worker.log_path is not None
    deadline = time.monotonic() + timeout
    while b" ready." not in (worker.log_path.read_bytes() if worker.log_path.exists() else b""):
        if not worker.running or time.monotonic() > deadline:
            raise RuntimeError(f"the worker did not become ready; see {worker.log_path}")
        time.sleep(0.2)


# --- the workload -----------------------------------------------------------------
@dataclass(frozen=True)
class Planned:
    at: float  # seconds after the stream begins
    callback: PreparedCallback


def make_recordings(stack: SoakStack, count: int, rng: random.Random) -> list[SimRecording]:
    faults = Faults(first_byte_seconds=TWILIO_LATENCY_SECONDS, bytes_per_second=TWILIO_BYTES_PER_SECOND)
    recordings = []
    for _ in range(count):
        channels, duration = _pick(rng)
        recordings.append(SimRecording(account_sid=stack.account_sid, channels=channels, duration=duration,
                                       faults=Faults(**asdict(faults))))
    for start in range(0, count, 500):
        body = json.dumps([recording_to_json(r) for r in recordings[start:start + 500]]).encode()
        request = urllib.request.Request(f"{stack.sim_url}/_sim/recordings", data=body, method="POST",
                                         headers={"Content-Type": "application/json"})
        with _LOCAL.open(request, timeout=120) as answer:
            answer.read()
    return recordings


def _pick(rng: random.Random) -> tuple[int, int]:
    """(channels, seconds) of one recording, drawn from MIX."""
    pick, total = rng.random(), 0.0
    for share, channels, duration in MIX:
        total += share
        if pick < total:
            return channels, duration
    return MIX[-1][1], MIX[-1][2]


def plan(sender: CallbackSender, stack: SoakStack, recordings: list[SimRecording], rate: float,
         rng: random.Random) -> list[Planned]:
    """Each recording's callbacks on the timeline: in-progress (some), completed, a repeat (a few)."""
    planned = []
    for index, rec in enumerate(recordings):
        at = index / rate
        if rng.random() < IN_PROGRESS_SHARE:
            planned.append(Planned(at, sender.prepare(callback_params(rec, "in-progress", api_base=stack.sim_url))))
            at += rng.uniform(0.5, 3.0)
        completed = sender.prepare(callback_params(rec, "completed", api_base=stack.sim_url))
        planned.append(Planned(at, completed))
        if rng.random() < REPEAT_SHARE:
            planned.append(Planned(at + rng.uniform(1.0, 5.0), completed))
    return sorted(planned, key=lambda p: p.at)


async def stream(sender: CallbackSender, planned: list[Planned], sent_at: dict[str, float]) -> list[CallbackResult]:
    loop = asyncio.get_running_loop()
    start, tasks = loop.time(), []
    for item in planned:
        delay = start + item.at - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        if item.callback.status == "completed":
            sent_at.setdefault(item.callback.recording_sid, time.time())
        tasks.append(asyncio.create_task(sender.send_prepared(item.callback)))
    return list(await asyncio.gather(*tasks))


# --- memory -----------------------------------------------------------------------
def tree_rss(pid: int | None) -> int:
    if pid is None:
        return 0
    try:
        root = psutil.Process(pid)
        processes = [root, *root.children(recursive=True)]
    except psutil.Error:
        return 0
    total = 0
    for process in processes:
        try:
            total += process.memory_info().rss
        except psutil.Error:
            continue
    return total


class Sampler:
    """Samples memory and the queue on a thread every SAMPLE_SECONDS."""

    def __init__(self, stack: SoakStack, began: float, sent: list[int]) -> None:
        self.stack, self.began, self.sent = stack, began, sent
        self.samples: list[Sample] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="soak-sampler", daemon=True)
        self._client = redis.Redis.from_url(stack.broker_url, socket_timeout=5)

    def __enter__(self) -> Sampler:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        self._thread.join()
        self._client.close()

    def _run(self) -> None:
        while not self._stop.wait(SAMPLE_SECONDS):
            try:
                memory = self._client.info("memory")
                queued = int(self._client.llen(QUEUE))
            except redis.RedisError:
                continue
            assert self.stack.ingest is not None and self.stack.worker is not None
            self.samples.append(Sample(
                at=time.monotonic() - self.began, ingest_rss=tree_rss(self.stack.ingest.pid),
                worker_rss=tree_rss(self.stack.worker.pid), redis_rss=tree_rss(self.stack.redis.pid),
                redis_dataset=int(memory["used_memory_dataset"]), queued=queued, sent=self.sent[0]))


def flatness(samples: list[Sample], seconds: float, attribute: str, allowance: float = 0.0) -> Flatness:
    """Median of the last third against the second third (the first is warm-up)."""
    second = [getattr(s, attribute) for s in samples if seconds / 3 <= s.at < 2 * seconds / 3]
    last = [getattr(s, attribute) for s in samples if 2 * seconds / 3 <= s.at <= seconds]
    if not second or not last:
        raise ValueError("too few samples to judge memory; run longer")
    before, after = statistics.median(second), statistics.median(last)
    growth = (after - before) / before
    allowed = FLAT_TOLERANCE * before + allowance
    tail = [(s.at, getattr(s, attribute)) for s in samples if seconds / 3 <= s.at <= seconds]
    return Flatness(round(before / 1e6, 1), round(after / 1e6, 1), round(100 * growth, 1), round(allowed / 1e6, 1),
                    round(_slope(tail) * 60 / 1e6, 2), after - before <= allowed)


def _slope(points: list[tuple[float, float]]) -> float:
    """Least-squares slope (units per second)."""
    if len(points) < 2:
        return 0.0
    mean_x = statistics.fmean(x for x, _ in points)
    mean_y = statistics.fmean(y for _, y in points)
    spread = sum((x - mean_x) ** 2 for x, _ in points)
    return sum((x - mean_x) * (y - mean_y) for x, y in points) / spread if spread else 0.0


def _median_between(samples: list[Sample], low: float, high: float, attribute: str) -> float:
    return statistics.median([getattr(s, attribute) for s in samples if low <= s.at <= high])


# --- the verdict ------------------------------------------------------------------
def drained(stack: SoakStack, view: ArchiveView, events: set[tuple[str, str]]) -> bool:
    present = {(key.rsplit("/", 1)[-1].removesuffix(".json"), "completed") for key in view.list_keys("metadata/")}
    for key in view.list_keys("events/"):
        sid, _, status = key.rsplit("/", 1)[-1].removesuffix(".json").partition("-")
        present.add((sid, status))
    if not events <= present:
        return False
    client = redis.Redis.from_url(stack.broker_url, socket_timeout=5)
    try:
        return client.llen(QUEUE) == 0 and client.hlen("unacked") == 0
    finally:
        client.close()


def verify(stack: SoakStack, view: ArchiveView, result: SoakResult, events: set[tuple[str, str]],
           recordings: dict[str, SimRecording], rng: random.Random) -> None:
    snap = view.snapshot()
    try:
        pushes = QueueLedger.read(stack.redis.dir, QUEUE).pushes
    except LedgerError as error:
        # An AOF rewritten during a long or fast run no longer holds every push; the bucket still
        # shows each event archived once.
        pushes = None
        result.notes.append(f"not counted how often each event was queued: {error}")
    completed = []
    for sid, status in sorted(events):
        problem = _once(snap, view, sid, status, recordings[sid])
        if pushes is not None and pushes[(sid, status)] != 1:
            problem = problem or f"queued {pushes[(sid, status)]} times"
        if problem:
            result.problems.append(f"{sid}:{status}: {problem}")
        else:
            result.archived_once += 1
        if status == "completed":
            completed.append(sid)
    for sid in rng.sample(completed, min(HASHED_SAMPLE, len(completed))):
        rec = recordings[sid]
        keys = snap.media.get(sid) or []
        if len(keys) != 1 or view.sha256(keys[0]) != media_sha256(sid, "wav", rec.channels, rec.duration):
            result.problems.append(f"{sid}: the stored media's SHA-256 is not the recording's")
    client = redis.Redis.from_url(stack.broker_url, socket_timeout=5)
    try:
        letters = client.hlen(DLQ_KEY)
        result.redis_keys_at_end = int(client.dbsize())
    finally:
        client.close()
    if letters:
        result.problems.append(f"{letters} dead letter(s)")
    if snap.uploads:
        result.problems.append(f"{len(snap.uploads)} unfinished multipart upload(s)")
    if snap.odd_keys:
        result.problems.append(f"keys outside recvault's layout: {snap.odd_keys[:3]}")
    if snap.delete_markers:
        result.problems.append(f"delete markers: {snap.delete_markers[:3]}")


def _once(snap: Snapshot, view: ArchiveView, sid: str, status: str, rec: SimRecording) -> str | None:
    if status != "completed":
        keys = snap.events.get((sid, status), [])
        if len(keys) != 1 or snap.versions[keys[0]] != 1:
            return f"{len(keys)} event document(s)"
        if snap.audit[(sid, f"event-{status}")] > 1:
            return "more than one audit record"
        return None
    documents, media = snap.metadata.get(sid, []), snap.media.get(sid, [])
    if len(documents) != 1 or snap.versions[documents[0]] != 1:
        return f"{len(documents)} metadata document(s)"
    if len(media) != 1 or snap.versions[media[0]] != 1:
        return f"{len(media)} media object(s)"
    if snap.audit[(sid, "archived")] != 1:
        return f"{snap.audit[(sid, 'archived')]} `archived` audit record(s)"
    document = view.document(documents[0])
    if (document.get("media_sha256") != media_sha256(sid, "wav", rec.channels, rec.duration)
            or document.get("media_size") != media_size(sid, "wav", rec.channels, rec.duration)):
        return "the document's SHA-256 or size is not the recording's"
    return None


# --- the run ----------------------------------------------------------------------
def run(seconds: float = DEFAULT_SECONDS, rate: float = DEFAULT_RATE, *, seed: int = 1,
        keep: bool = False) -> SoakResult:
    rng = random.Random(seed)
    result = SoakResult(seconds=seconds, rate=rate)
    with soak_stack(keep=keep) as stack:
        recordings = make_recordings(stack, max(1, round(seconds * rate)), rng)
        result.recordings = len(recordings)
        by_sid = {r.sid: r for r in recordings}
        view = ArchiveView(stack.s3.s3_url, BUCKET)
        assert stack.worker is not None and stack.worker.log_path is not None
        log = WorkerLog(stack.worker.log_path)
        sent_at: dict[str, float] = {}

        async def go(sent: list[int]) -> list[CallbackResult]:
            async with CallbackSender(stack.callback_url, auth_token=stack.token, concurrency=64) as sender:
                planned = plan(sender, stack, recordings, rate, rng)
                result.callbacks_sent = len(planned)
                counting = asyncio.create_task(_count(sent, planned))
                try:
                    return await stream(sender, planned, sent_at)
                finally:
                    counting.cancel()

        sent_so_far = [0]
        began = time.monotonic()
        with Sampler(stack, began, sent_so_far) as sampler:
            answers = asyncio.run(go(sent_so_far))
            streamed = time.monotonic() - began
            events = {(a.recording_sid, a.recording_status) for a in answers if a.ok}
            deadline = time.monotonic() + DRAIN_SECONDS
            while not drained(stack, view, events):
                if time.monotonic() > deadline:
                    result.problems.append(f"not drained {DRAIN_SECONDS} s after the stream")
                    break
                time.sleep(1)
            else:
                result.drained_in_s = round(time.monotonic() - began - streamed, 1)
        result.samples = sampler.samples
        _answers(result, answers, events)
        log.poll()
        lags = [log.archived[sid] - sent for sid, sent in sent_at.items() if sid in log.archived]
        if lags:
            result.archive_lag_p50_s = round(percentile(lags, 50), 2)
            result.archive_lag_p99_s = round(percentile(lags, 99), 2)
        verify(stack, view, result, events, by_sid, rng)
        _memory(result, streamed)
    return result


async def _count(sent: list[int], planned: list[Planned]) -> None:
    """Keeps sent[0] at the callbacks sent so far, for Redis's bytes per callback."""
    loop = asyncio.get_running_loop()
    start = loop.time()
    while True:
        elapsed = loop.time() - start
        sent[0] = sum(1 for p in planned if p.at <= elapsed)
        await asyncio.sleep(SAMPLE_SECONDS)


def _answers(result: SoakResult, answers: list[CallbackResult], events: set[tuple[str, str]]) -> None:
    result.accepted = len(events)
    for answer in answers:
        if not answer.ok:
            key = str(answer.http_status or answer.error)
            result.refused[key] = result.refused.get(key, 0) + 1
    if result.refused:
        result.problems.append(f"callbacks not answered 2xx: {result.refused}")
    latencies = [a.elapsed * 1000 for a in answers]
    result.answer_p50_ms = round(percentile(latencies, 50), 1)
    result.answer_p99_ms = round(percentile(latencies, 99), 1)


def _memory(result: SoakResult, streamed: float) -> None:
    samples = [s for s in result.samples if s.at <= streamed]
    result.memory["ingest"] = flatness(samples, streamed, "ingest_rss")
    result.memory["worker tree"] = flatness(samples, streamed, "worker_rss")
    # Redis: its dataset grows with the data it keeps for a while; that growth is allowed on top.
    second = (streamed / 3, 2 * streamed / 3)
    last = (2 * streamed / 3, streamed)
    dataset_growth = (_median_between(samples, *last, "redis_dataset")
                      - _median_between(samples, *second, "redis_dataset"))
    callbacks = _median_between(samples, *last, "sent") - _median_between(samples, *second, "sent")
    per_callback = dataset_growth / callbacks if callbacks else 0.0
    result.redis_dataset_bytes_per_callback = round(per_callback, 1)
    result.memory["redis"] = flatness(samples, streamed, "redis_rss", allowance=max(0.0, dataset_growth))
    if per_callback > REDIS_DATASET_BYTES_PER_CALLBACK:
        result.problems.append(f"Redis's dataset grew {per_callback:.0f} bytes per callback "
                               f"(more than the {REDIS_DATASET_BYTES_PER_CALLBACK} its windows hold)")
