"""Ingest: validated-and-queued callbacks per second, at saturation and at a fixed offered rate."""

from __future__ import annotations

import json
import math
import subprocess
import sys
import time

from bench import ingest_servers
from bench.ingest_servers import Server
from bench.plan import Plan
from bench.procs import ROOT, python_env
from bench.signed_requests import SignedCallbacks
from bench.stack import QUEUE, Stack
from bench.stats import median, ratio
from bench.wrk import ensure_wrk, run_wrk
from recvault.launch.services import free_port

# Signed callbacks to have beyond the expected count, so a faster run never repeats one.
HEADROOM = 1.5


def run(stack: Stack, plan: Plan, earlier: dict) -> dict:
    """Every server at saturation (wrk) and at `plan.fixed_rate` (Python sender), plus ratios."""
    ensure_wrk()
    port = free_port()
    url = f"http://127.0.0.1:{port}/twilio/recording-status"
    signed = SignedCallbacks(stack.workdir / "signed.tsv", url=url, token=stack.auth_token,
                             account_sid=stack.account_sid)
    signed.ensure(math.ceil(plan.fixed_rate * max(plan.fixed_seconds, plan.fixed_warmup_seconds)) + 100)
    results = {}
    for server in ingest_servers.servers(plan.ingest_processes):
        handles = ingest_servers.start(server, stack, port)
        try:
            results[server.name] = _measure(stack, server, url, signed, plan)
        finally:
            for handle in handles:
                handle.stop()
        results[server.name]["processes"] = server.processes
        if server.kind == "ceiling":
            results[server.name]["generator"] = _python_sender_capacity(signed, url, plan)
    stack.reset_broker()  # leave no benchmark callbacks for the workers of later sections
    _add_ratios(results)
    return {"url": url, "connections": plan.connections, "fixed_rate": plan.fixed_rate, "servers": results,
            "recvault_processes_flag": ingest_servers.serve_supports_processes()}


def _measure(stack: Stack, server: Server, url: str, signed: SignedCallbacks, plan: Plan) -> dict:
    warm = run_wrk(url, signed.ensure(1000), seconds=plan.ingest_warmup_seconds, connections=plan.connections)
    if server.queues:  # the ceiling ignores content: it may see a callback twice
        signed.ensure(math.ceil(warm.rate * plan.ingest_seconds * HEADROOM) + 1000)
    saturation = [_saturation_run(stack, server, url, signed, plan) for _ in range(plan.runs)]
    _fixed_rate(signed, url, plan.fixed_rate, plan.fixed_warmup_seconds)  # warm-up
    fixed = [_fixed_run(stack, server, url, signed, plan) for _ in range(plan.runs)]
    return {
        "saturation": {"rate": median([r["rate"] for r in saturation]),
                       "p50_ms": median([r["p50_ms"] for r in saturation]),
                       "p99_ms": median([r["p99_ms"] for r in saturation]), "runs": saturation},
        "fixed_rate": {"offered": plan.fixed_rate,
                       "achieved": median([r["achieved_rate"] for r in fixed]),
                       "p50_ms": median([r["p50_ms"] for r in fixed]),
                       "p99_ms": median([r["p99_ms"] for r in fixed]), "runs": fixed},
        "all_queued_once": all(r["queue_check"] in ("ok", "n/a") for r in saturation + fixed),
    }


def _saturation_run(stack: Stack, server: Server, url: str, signed: SignedCallbacks, plan: Plan) -> dict:
    _settle(stack)
    stack.reset_broker()
    result = run_wrk(url, signed.path, seconds=plan.ingest_seconds, connections=plan.connections).as_dict()
    accepted = result["requests"] - result["non_2xx"]
    result["queue_check"] = "n/a"
    if server.queues:
        queued = _settle(stack)
        result["queued"] = queued
        # wrk stops counting at its deadline; up to one request per connection is answered after.
        unique = result["requests"] <= signed.lines
        fits = accepted <= queued <= accepted + plan.connections
        result["queue_check"] = "ok" if unique and fits and not result["non_2xx"] else "MISMATCH"
    return result


def _fixed_run(stack: Stack, server: Server, url: str, signed: SignedCallbacks, plan: Plan) -> dict:
    _settle(stack)
    stack.reset_broker()
    result = _fixed_rate(signed, url, plan.fixed_rate, plan.fixed_seconds)
    result["queue_check"] = "n/a"
    if server.queues:
        result["queued"] = _settle(stack)
        result["queue_check"] = "ok" if result["queued"] == result["ok"] == result["sent"] else "MISMATCH"
    return result


def _fixed_rate(signed: SignedCallbacks, url: str, rate: float, seconds: float) -> dict:
    count = max(1, math.ceil(rate * seconds))
    return _sender(signed, url, rate, count)


def _sender(signed: SignedCallbacks, url: str, rate: float, count: int) -> dict:
    """The Python sender in a process of its own (so it does not share the benchmark's interpreter)."""
    argv = [sys.executable, "-m", "bench.fixed_rate", str(signed.ensure(count)), url, str(rate), str(count)]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=600, cwd=ROOT, env=python_env())
    if done.returncode != 0:
        raise RuntimeError(f"fixed-rate sender failed: {done.stderr.strip()[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def _python_sender_capacity(signed: SignedCallbacks, url: str, plan: Plan) -> dict:
    """How fast the fixed-rate sender can go at all, against the ceiling (unlimited rate)."""
    count = max(100, math.ceil(plan.fixed_rate * plan.fixed_seconds))
    return _sender(signed, url, 0, count)


def _settle(stack: Stack, interval: float = 0.3) -> int:
    """The queue length once it stops growing: requests a server still held when wrk stopped land."""
    with stack.client() as client:
        length = int(client.llen(QUEUE))
        while True:
            time.sleep(interval)
            now = int(client.llen(QUEUE))
            if now == length:
                return now
            length = now


def _add_ratios(results: dict) -> None:
    ceiling = next((r for name, r in results.items() if "ceiling" in name), None)
    tutorial = next((r for name, r in results.items() if "tutorial" in name), None)
    for result in results.values():
        rate = result["saturation"]["rate"]
        result["vs_ceiling"] = ratio(rate, ceiling["saturation"]["rate"]) if ceiling else None
        result["vs_tutorial"] = ratio(rate, tutorial["saturation"]["rate"]) if tutorial else None
