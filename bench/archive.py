"""Archive: recordings per second and MB/s from the simulator to SeaweedFS, per recording size."""

from __future__ import annotations

import json
import subprocess
import sys

from bench import recordings as rec
from bench.batches import measure_worker, summarize
from bench.plan import Plan, Size
from bench.procs import ROOT, python_env
from bench.rss import MB
from bench.stack import BUCKET, Stack, local_credentials
from bench.stats import ratio
from recvault.simulator.recordings import SimRecording


def run(stack: Stack, plan: Plan, earlier: dict) -> dict:
    """Each size through recvault's worker (one process, one archive at a time), the storage ceiling and
    the naive design."""
    return {"worker_concurrency": 1, "sizes": [_size(stack, size, plan) for size in plan.sizes]}


def _size(stack: Stack, size: Size, plan: Plan) -> dict:
    stack.fresh_s3()
    warmup = rec.create(stack, 1, channels=size.channels, duration=size.warmup_duration or size.duration)
    batches = [rec.create(stack, size.count, channels=size.channels, duration=size.duration)
               for _ in range(plan.runs)]
    name = f"worker-archive-{size.duration}s-{size.channels}ch"
    worker = stack.worker(name, concurrency=1, processes=1)  # one archive at a time, like the baselines
    recvault = measure_worker(stack, worker, name, warmup, batches)
    ceiling = _ceiling(stack, warmup, batches)
    naive = _baseline(stack, "naive", warmup, batches)
    return {
        "size": size.label, "channels": size.channels, "duration_s": size.duration,
        "bytes": rec.size_of(batches[0][0]), "recordings_per_run": size.count,
        "recvault": recvault, "ceiling": ceiling, "naive": naive,
        "vs_ceiling": ratio(recvault["mb_per_s"], ceiling["mb_per_s"]),
        "vs_naive": ratio(recvault["mb_per_s"], naive["mb_per_s"]),
    }


def _ceiling(stack: Stack, warmup: list[SimRecording], batches: list[list[SimRecording]]) -> dict:
    """The better of boto3's two ways to upload bytes already in memory."""
    ways = {way: _baseline(stack, way, warmup, batches) for way in ("upload_fileobj", "put_object")}
    best = max(ways, key=lambda way: ways[way]["mb_per_s"])
    other = next(way for way in ways if way != best)
    return {**ways[best], "method": best, "other_method": {"method": other, **ways[other]}}


def _baseline(stack: Stack, design: str, warmup: list[SimRecording], batches: list[list[SimRecording]]) -> dict:
    """Run a baseline over the same recordings in its own process; its first batch is the warm-up."""
    job = {
        "design": design, "endpoint": stack.s3.s3_url, "bucket": BUCKET, "credentials": local_credentials(),
        "api_base": stack.sim_url, "account_sid": stack.account_sid, "auth_token": stack.auth_token,
        "runs": [[{"sid": r.sid, "channels": r.channels, "duration": r.duration} for r in batch]
                 for batch in [warmup, *batches]],
    }
    path = stack.workdir / f"job-{design}.json"
    path.write_text(json.dumps(job))
    done = subprocess.run([sys.executable, "-m", "bench.baselines.archive_job", str(path)],
                          capture_output=True, text=True, timeout=3600, cwd=ROOT, env=python_env())
    if done.returncode != 0:
        raise RuntimeError(f"{design} baseline failed: {done.stderr.strip()[-2000:]}")
    answer = json.loads(done.stdout.strip().splitlines()[-1])
    runs = []
    for batch, seconds in zip(batches, answer["runs"][1:], strict=True):
        total, elapsed = sum(rec.size_of(r) for r in batch), sum(seconds)
        runs.append({"recordings": len(batch), "bytes": total, "seconds": round(elapsed, 3),
                     "rec_per_s": round(len(batch) / elapsed, 2), "mb_per_s": round(total / elapsed / 1e6, 1)})
    return {**summarize(runs), "peak_rss_mb": round(answer["peak_rss_bytes"] / MB, 1)}
