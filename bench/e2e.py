"""End to end: callback sent → metadata document in S3, at a steady rate of recordings."""

from __future__ import annotations

import asyncio
import math
import time

from bench import recordings as rec
from bench.plan import Plan
from bench.rss import TreeSampler
from bench.stack import Stack
from bench.stats import median, percentile
from bench.worker_log import WorkerLog
from recvault.launch.services import free_port
from recvault.simulator.callbacks import CallbackSender
from recvault.simulator.recordings import SimRecording

CHANNELS, DURATION = 2, 60  # one-minute dual-channel recordings, 1.92 MB each
DRAIN_TIMEOUT = 600
# A steady rate this machine keeps up with: this share of the batch rate measured under Scaling.
SUSTAINABLE_SHARE = 0.6


def run(stack: Stack, plan: Plan, earlier: dict) -> dict:
    """The target rate, and a rate this machine sustains when Scaling measured one lower than it."""
    workers, capacity = _best_workers(earlier, plan)
    rates = [plan.e2e_rate]
    if capacity and capacity * SUSTAINABLE_SHARE < plan.e2e_rate:
        rates.append(max(1, round(capacity * SUSTAINABLE_SHARE)))
    stack.fresh_s3()
    port = free_port()
    url = f"http://127.0.0.1:{port}/twilio/recording-status"
    ingest = stack.component("ingest-e2e", ["serve", "--host", "127.0.0.1", "--port", str(port)],
                             ready_url=f"http://127.0.0.1:{port}/readyz")
    worker = stack.worker("worker-e2e", concurrency=workers, pool="prefork")  # as many processes as Scaling chose
    log = WorkerLog(stack.log("worker-e2e"))
    try:
        entries = [_at_rate(stack, plan, url, log, worker.pid, rate) for rate in rates]
    finally:
        stack.stop(worker)
        stack.stop(ingest)
    return {"worker_concurrency": workers, "batch_capacity_rec_per_s": capacity,
            "recording": "1-minute dual (1.92 MB)", "seconds_per_run": plan.e2e_seconds, "rates": entries}


def _best_workers(earlier: dict, plan: Plan) -> tuple[int, float | None]:
    """Worker processes that archived fastest under Scaling, and that rate; else the plan's default."""
    scaling = earlier.get("scaling")
    if not scaling or not scaling["workers"]:
        return plan.e2e_workers, None
    best = max(scaling["workers"], key=lambda w: w["rec_per_s"])
    return best["processes"], best["rec_per_s"]


def _at_rate(stack: Stack, plan: Plan, url: str, log: WorkerLog, worker_pid: int, rate: float) -> dict:
    warm = _batch(stack, rate, plan.e2e_warmup_seconds)
    batches = [_batch(stack, rate, plan.e2e_seconds) for _ in range(plan.runs)]
    _run_once(stack, url, log, warm, rate)
    with TreeSampler(worker_pid) as memory:
        runs = [_run_once(stack, url, log, batch, rate) for batch in batches]
    missing = rec.missing_documents(stack, [r for batch in batches for r in batch])
    return {"rate": rate, "p50_s": round(median([r["p50_s"] for r in runs]), 3),
            "p99_s": round(median([r["p99_s"] for r in runs]), 3),
            "archived_per_s": round(median([r["archived_per_s"] for r in runs]), 1),
            "documents_missing": len(missing), **memory.summary(), "runs": runs}


def _batch(stack: Stack, rate: float, seconds: float) -> list[SimRecording]:
    return rec.create(stack, max(1, math.ceil(rate * seconds)), channels=CHANNELS, duration=DURATION)


def _run_once(stack: Stack, url: str, log: WorkerLog, batch: list[SimRecording], rate: float) -> dict:
    sent = asyncio.run(_send(stack, url, batch, rate))
    archived = log.wait([r.sid for r in batch], timeout=DRAIN_TIMEOUT)
    latencies = [archived[sid] - sent[sid] for sid in sent]
    first, last = min(sent.values()), max(archived.values())
    return {"recordings": len(batch), "offered_rate": rate,
            "sent_per_s": round(len(batch) / max(1e-9, max(sent.values()) - first), 1),
            "archived_per_s": round(len(batch) / (last - first), 1),
            "p50_s": round(percentile(latencies, 50), 3), "p99_s": round(percentile(latencies, 99), 3),
            "max_s": round(max(latencies), 3)}


async def _send(stack: Stack, url: str, batch: list[SimRecording], rate: float) -> dict[str, float]:
    """Send each recording's `completed` callback on schedule; the wall-clock time each was sent."""
    sent: dict[str, float] = {}
    async with CallbackSender(url, auth_token=stack.auth_token, concurrency=64) as sender:
        prepared = [sender.prepare(rec.params(stack, r)) for r in batch]
        loop = asyncio.get_running_loop()
        begin, tasks = loop.time(), []
        for index, item in enumerate(prepared):
            delay = begin + index / rate - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            sent[item.recording_sid] = time.time()
            tasks.append(asyncio.create_task(sender.send_prepared(item)))
        results = await asyncio.gather(*tasks)
    refused = [r for r in results if not r.ok]
    if refused:
        raise RuntimeError(f"{len(refused)} callbacks refused, e.g. {refused[0]}")
    return sent
