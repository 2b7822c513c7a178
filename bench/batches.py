"""One batch of recordings through a real worker: queued at once, timed until the last is archived."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, TypeVar

from bench import recordings as rec
from bench.recordings import Enqueuer
from bench.rss import TreeSampler
from bench.stats import median
from bench.worker_log import WorkerLog
from recvault.simulator.recordings import SimRecording

if TYPE_CHECKING:
    from bench.stack import Stack
    from recvault.launch.process import Component

# Slowest pace a batch may take before it counts as stuck: 5 MB/s plus a minute.
MIN_BYTES_PER_SECOND = 5e6
Batch = TypeVar("Batch")


def archive_batch(enqueuer: Enqueuer, log: WorkerLog, batch: list[SimRecording]) -> dict:
    """Queue `batch`, wait for every `archived` log line; rate and throughput of the whole batch."""
    total = sum(rec.size_of(r) for r in batch)
    started = enqueuer.enqueue(batch)
    archived = log.wait([r.sid for r in batch], timeout=60 + total / MIN_BYTES_PER_SECOND)
    seconds = max(archived.values()) - started
    return {"recordings": len(batch), "bytes": total, "seconds": round(seconds, 3),
            "rec_per_s": round(len(batch) / seconds, 2), "mb_per_s": round(total / seconds / 1e6, 1)}


def summarize(runs: list[dict]) -> dict:
    """Median rate and throughput of measured runs (warm-up already left out)."""
    return {"rec_per_s": round(median([r["rec_per_s"] for r in runs]), 2),
            "mb_per_s": round(median([r["mb_per_s"] for r in runs]), 1), "runs": runs}


def sampled_runs(pid: int, run: Callable[[Batch], dict], warmup: Batch,
                 batches: list[Batch]) -> tuple[list[dict], dict[str, float]]:
    """`run` over a warm-up batch (left out) and the measured ones, with the peak RSS of `pid`'s tree."""
    with TreeSampler(pid) as memory:
        run(warmup)
        runs = [run(batch) for batch in batches]
    return runs, memory.summary()


def measure_worker(stack: Stack, worker: Component, name: str, warmup: list[SimRecording],
                   batches: list[list[SimRecording]]) -> dict:
    """A started worker through a warm-up batch and the measured ones: medians, its tree's peak
    RSS and how many documents are missing; the worker is stopped afterwards."""
    log, enqueuer = WorkerLog(stack.log(name)), Enqueuer(stack)
    try:
        runs, rss = sampled_runs(worker.pid, lambda batch: archive_batch(enqueuer, log, batch), warmup, batches)
    finally:
        enqueuer.close()
        stack.stop(worker)
    missing = rec.missing_documents(stack, [r for batch in batches for r in batch])
    return {**summarize(runs), **rss, "documents_missing": len(missing)}
