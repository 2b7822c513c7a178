"""Scaling: archive throughput with 1, 2 and 4 worker processes on this machine's cores."""

from __future__ import annotations

import os

from bench import recordings as rec
from bench.batches import archive_batch, summarize
from bench.cpu import CpuMeter
from bench.plan import Plan
from bench.recordings import Enqueuer
from bench.rss import TreeSampler
from bench.stack import Stack
from bench.stats import ratio
from bench.worker_log import WorkerLog

CHANNELS, DURATION = 2, 60  # one-minute dual-channel recordings


def run(stack: Stack, plan: Plan, earlier: dict) -> dict:
    """`recvault worker --pool prefork -c N` for each N, the same batch size each time."""
    stack.fresh_s3()
    results = [_workers(stack, plan, n) for n in plan.scaling_workers]
    base = results[0]["rec_per_s"] if results else 0.0
    for result in results:
        result["vs_one"] = ratio(result["rec_per_s"], base)
    return {"cores": os.cpu_count(), "recording": "1-minute dual (1.92 MB)",
            "recordings_per_run": plan.scaling_count, "workers": results}


def _workers(stack: Stack, plan: Plan, concurrency: int) -> dict:
    warmup = rec.create(stack, 2 * concurrency, channels=CHANNELS, duration=DURATION)
    batches = [rec.create(stack, plan.scaling_count, channels=CHANNELS, duration=DURATION)
               for _ in range(plan.runs)]
    name = f"worker-scaling-{concurrency}"
    worker = stack.worker(name, concurrency=concurrency, pool="prefork")  # processes, one archive each
    log, enqueuer = WorkerLog(stack.log(name)), Enqueuer(stack)
    try:
        with TreeSampler(worker.pid) as memory:
            archive_batch(enqueuer, log, warmup)
            with CpuMeter(stack.pids(worker)) as cpu:
                runs = [archive_batch(enqueuer, log, batch) for batch in batches]
        rss = memory.summary()
    finally:
        enqueuer.close()
        stack.stop(worker)
    archived = sum(run["recordings"] for run in runs)
    per_recording = {name: round(1000 * seconds / archived, 1) for name, seconds in cpu.seconds.items()}
    return {"processes": concurrency, **summarize(runs), **rss, "cpu_ms_per_recording": per_recording,
            "cpu_bound_rec_per_s": round(1000 * (os.cpu_count() or 1) / sum(per_recording.values()), 1)}
