"""Archive under Twilio latency: rec/s and worker RSS when every Twilio answer is an internet away.

Twilio answers after about a quarter of a second and streams one media file at a few MB/s;
the simulator plays that with its `first_byte_seconds` and `bytes_per_second` faults on every
recording. One-minute dual recordings are queued at once and timed until the last is archived,
for recvault's default worker, recvault's earlier default (prefork, 2 processes), and the
designs tutorials teach: a Celery prefork pool of 2 running a fetch-whole-then-`put_object`
task, and that task in one process, one recording at a time.
"""

from __future__ import annotations

import time

import redis

from bench import recordings as rec
from bench.baselines import tutorial_worker
from bench.batches import measure_worker, sampled_runs, summarize
from bench.plan import Plan
from bench.procs import Launched, python_env
from bench.stack import BUCKET, Stack, local_credentials
from bench.stats import ratio
from recvault.simulator.recordings import Faults, SimRecording

CHANNELS, DURATION = 2, 60  # one-minute dual-channel recordings, 1.92 MB each
# (seconds before each answer, bytes per second of one media stream): Twilio-like, then loopback.
CONDITIONS = ((0.25, 2_000_000), (0.0, None))
TUTORIAL_QUEUE = "tutorial"
WARMUP = 4
# Slowest pace a batch may take before it counts as stuck.
MIN_REC_PER_S = 0.2


def run(stack: Stack, plan: Plan, earlier: dict) -> dict:
    """Every design at each condition, the same recordings' shape and the same stack."""
    return {"recording": "1-minute dual (1.92 MB)", "runs": plan.runs,
            "conditions": [_condition(stack, plan, latency, bandwidth) for latency, bandwidth in CONDITIONS]}


def _condition(stack: Stack, plan: Plan, latency: float, bandwidth: float | None) -> dict:
    faults = Faults(first_byte_seconds=latency, bytes_per_second=bandwidth)
    stack.fresh_s3()
    designs = {
        "recvault worker (defaults)": _recvault(stack, plan, faults, plan.latency_count, None),
        "recvault worker --pool prefork -c 2": _recvault(stack, plan, faults, plan.latency_baseline_count,
                                                         "prefork"),
        "tutorial (Celery prefork -c 2, fetch whole, put_object)": _tutorial(stack, plan, faults, "prefork", 2),
        "naive (one process, one recording at a time)": _tutorial(stack, plan, faults, "solo", 1),
    }
    tutorial = designs["tutorial (Celery prefork -c 2, fetch whole, put_object)"]["rec_per_s"]
    for result in designs.values():
        result["vs_tutorial"] = ratio(result["rec_per_s"], tutorial)
    return {"latency_s": latency, "bytes_per_second": bandwidth, "designs": designs}


def _recvault(stack: Stack, plan: Plan, faults: Faults, count: int, pool: str | None) -> dict:
    warmup = rec.create(stack, WARMUP, channels=CHANNELS, duration=DURATION, faults=faults)
    batches = [rec.create(stack, count, channels=CHANNELS, duration=DURATION, faults=faults)
               for _ in range(plan.runs)]
    name = f"worker-latency-{pool or 'default'}-{int(faults.first_byte_seconds * 1000)}ms"
    worker = stack.worker(name, concurrency=None, pool=pool)
    return {"recordings_per_run": count, **measure_worker(stack, worker, name, warmup, batches)}


def _tutorial(stack: Stack, plan: Plan, faults: Faults, pool: str, concurrency: int) -> dict:
    count = plan.latency_baseline_count
    warmup = rec.create(stack, WARMUP // 2, channels=CHANNELS, duration=DURATION, faults=faults)
    batches = [rec.create(stack, count, channels=CHANNELS, duration=DURATION, faults=faults)
               for _ in range(plan.runs)]
    name = f"tutorial-{pool}-{int(faults.first_byte_seconds * 1000)}ms"
    access, secret = local_credentials().values()
    env = python_env({
        "TUTORIAL_BROKER_URL": stack.broker_url, "TUTORIAL_S3_ENDPOINT": stack.s3.s3_url,
        "TUTORIAL_BUCKET": BUCKET, "TUTORIAL_ACCOUNT_SID": stack.account_sid,
        "TUTORIAL_AUTH_TOKEN": stack.auth_token, "TUTORIAL_ACCESS_KEY": access, "TUTORIAL_SECRET_KEY": secret,
    })
    log = stack.log(name)
    worker = Launched.python(["celery", "-A", "bench.baselines.tutorial_worker", "worker", "-P", pool,
                              "-c", str(concurrency), "-Q", TUTORIAL_QUEUE, "--without-gossip",
                              "--without-mingle", "--without-heartbeat", "--loglevel", "INFO"],
                             env=env, log_path=log).start()
    client = stack.client()
    try:
        _wait_ready(worker, log)
        runs, rss = sampled_runs(worker.pid, lambda batch: _tutorial_batch(client, batch, stack), warmup, batches)
    finally:
        client.close()
        worker.stop()
    return {"recordings_per_run": count, **summarize(runs), **rss}


def _wait_ready(worker: Launched, log, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while not (log.exists() and b" ready." in log.read_bytes()):
        if not worker.running or time.monotonic() > deadline:
            raise RuntimeError(f"tutorial worker did not become ready; see {log}")
        time.sleep(0.1)


def _tutorial_batch(client: redis.Redis, batch: list[SimRecording], stack: Stack) -> dict:
    """Queue `batch` with `send_task`, wait until the tasks have counted themselves done."""
    client.delete(tutorial_worker.DONE_KEY, tutorial_worker.LAST_KEY)
    app = tutorial_worker.app
    app.conf.broker_url = stack.broker_url
    started = time.time()
    with app.connection_for_write() as connection:
        for r in batch:
            url = f"{stack.sim_url}/2010-04-01/Accounts/{r.account_sid}/Recordings/{r.sid}"
            app.send_task("tutorial.archive", args=[url, r.sid, r.channels], queue=TUTORIAL_QUEUE,
                          connection=connection)
    deadline = time.monotonic() + 60 + len(batch) / MIN_REC_PER_S
    while int(client.get(tutorial_worker.DONE_KEY) or 0) < len(batch):
        if time.monotonic() > deadline:
            raise TimeoutError(f"tutorial worker archived {client.get(tutorial_worker.DONE_KEY)} of {len(batch)}")
        time.sleep(0.05)
    seconds = float(client.get(tutorial_worker.LAST_KEY) or time.time()) - started
    total = sum(rec.size_of(r) for r in batch)
    return {"recordings": len(batch), "bytes": total, "seconds": round(seconds, 3),
            "rec_per_s": round(len(batch) / seconds, 2), "mb_per_s": round(total / seconds / 1e6, 1)}
