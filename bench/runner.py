"""Run the chosen benchmark sections on one private stack and gather their results."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime

from bench import archive, e2e, fsync, ingest, latency, scaling, targets
from bench.machine import machine_facts
from bench.plan import Plan
from bench.stack import running_stack

# In this order: End to end uses the worker count Scaling found fastest.
SECTIONS: dict[str, Callable] = {"ingest": ingest.run, "fsync": fsync.run, "archive": archive.run,
                                 "latency": latency.run, "scaling": scaling.run, "e2e": e2e.run}


def run_benchmarks(plan: Plan, sections: list[str] | None = None,
                   progress: Callable[[str], None] = lambda _: None) -> dict:
    """Results of each section (all by default), with machine facts and the target checks."""
    chosen = [name for name in SECTIONS if name in (sections or SECTIONS)]
    began = time.monotonic()
    results: dict = {"started_at": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
                     "machine": machine_facts(), "plan": plan.as_dict()}
    with running_stack() as stack:
        for name in chosen:
            progress(f"{name} …")
            started = time.monotonic()
            results[name] = SECTIONS[name](stack, plan, results)
            progress(f"{name} done in {time.monotonic() - started:.0f} s")
    results["seconds"] = round(time.monotonic() - began, 1)
    results["targets"] = targets.check(results)
    return results
