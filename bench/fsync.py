"""What the broker's `appendfsync always` costs ingest, against `everysec`, in the same run.

recvault ships Redis with `appendfsync always` (deploy/redis/redis.conf): every write is on
disk before Redis answers it, so neither a Redis kill -9 nor a host crash loses a callback
ingest answered 2xx; with `everysec` a host crash would lose the last second or two of them
(and a kill -9 those held back behind a slow fsync). This section measures the price: the same
`recvault serve` (as many processes as Compose runs it with), the same Redis and the same
pre-signed callbacks, with the policy switched on the running Redis (CONFIG SET) between
runs that alternate always, everysec, always, … so that a change in the machine's load
falls on both alike. Each run is wrk at saturation (rate, p50, p99) and the Python sender
at the plan's fixed rate (p50, p99); the report gives the medians per policy and their ratio.

Automatic AOF rewrites are held off while it runs and the AOF is compacted before each run
(both restored after): a rewrite costs the same under either policy, and one falling inside
some runs and not others would only blur the comparison.
"""

from __future__ import annotations

import math
import time

import redis

from bench import ingest, ingest_servers
from bench.ingest_servers import Server
from bench.plan import Plan
from bench.signed_requests import SignedCallbacks
from bench.stack import Stack
from bench.stats import median, ratio
from bench.wrk import ensure_wrk, run_wrk
from recvault.launch.services import free_port

POLICIES = ("always", "everysec")
SHIPPED = "always"


def run(stack: Stack, plan: Plan, earlier: dict) -> dict:
    """Saturation and fixed-rate runs of recvault's ingest under each policy, interleaved."""
    ensure_wrk()
    processes = max(plan.ingest_processes) if ingest_servers.serve_supports_processes() else 1
    server = Server(f"recvault ×{processes}", processes, True, "recvault")
    port = free_port()
    url = f"http://127.0.0.1:{port}/twilio/recording-status"
    signed = SignedCallbacks(stack.workdir / "signed-fsync.tsv", url=url, token=stack.auth_token,
                             account_sid=stack.account_sid)
    signed.ensure(math.ceil(plan.fixed_rate * max(plan.fixed_seconds, plan.fixed_warmup_seconds)) + 100)
    runs: dict[str, list[dict]] = {policy: [] for policy in POLICIES}
    with stack.client() as client:
        before = _config(client)
        handles = ingest_servers.start(server, stack, port)
        try:
            client.config_set("auto-aof-rewrite-percentage", 0)
            warm = run_wrk(url, signed.ensure(1000), seconds=plan.ingest_warmup_seconds,
                           connections=plan.connections)
            signed.ensure(math.ceil(warm.rate * plan.ingest_seconds * ingest.HEADROOM) + 1000)
            for _ in range(plan.runs):
                for policy in POLICIES:
                    runs[policy].append(_one_run(stack, client, server, url, signed, plan, policy))
        finally:
            for handle in handles:
                handle.stop()
            client.config_set("appendfsync", before["appendfsync"])
            client.config_set("auto-aof-rewrite-percentage", before["auto-aof-rewrite-percentage"])
    stack.reset_broker()
    policies = {policy: _summary(policy_runs) for policy, policy_runs in runs.items()}
    shipped, other = policies[SHIPPED], policies["everysec"]
    pairs = list(zip(runs[SHIPPED], runs["everysec"], strict=True))
    return {
        "server": server.name, "connections": plan.connections, "fixed_rate": plan.fixed_rate, "runs": plan.runs,
        "shipped": SHIPPED, "policies": policies,
        # always / everysec: below 1 for throughput, above 1 for latency, is what always costs.
        "always_vs_everysec": {
            "saturation_rate": ratio(shipped["saturation"]["rate"], other["saturation"]["rate"]),
            "saturation_p99": ratio(shipped["saturation"]["p99_ms"], other["saturation"]["p99_ms"]),
            "fixed_rate_p99": ratio(shipped["fixed_rate"]["p99_ms"], other["fixed_rate"]["p99_ms"]),
        },
        # The same, as the median of each pair of neighbouring runs' ratio: steadier when the
        # machine's load drifts during the section.
        "always_vs_everysec_paired": {
            "saturation_rate": _paired(pairs, "saturation", "rate"),
            "saturation_p99": _paired(pairs, "saturation", "p99_ms"),
            "fixed_rate_p99": _paired(pairs, "fixed_rate", "p99_ms"),
        },
        "all_queued_once": all(r["queue_check"] == "ok" for policy_runs in runs.values() for run in policy_runs
                               for r in (run["saturation"], run["fixed_rate"])),
    }


def _config(client: redis.Redis) -> dict[str, str]:
    values = client.config_get("appendfsync") | client.config_get("auto-aof-rewrite-percentage")
    return {_text(k): _text(v) for k, v in values.items()}


def _text(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _one_run(stack: Stack, client: redis.Redis, server: Server, url: str, signed: SignedCallbacks,
             plan: Plan, policy: str) -> dict:
    client.config_set("appendfsync", policy)
    _compact(stack, client)
    saturation = ingest._saturation_run(stack, server, url, signed, plan)
    _compact(stack, client)
    fixed = ingest._fixed_run(stack, server, url, signed, plan)
    return {"policy": policy, "saturation": saturation, "fixed_rate": fixed}


def _compact(stack: Stack, client: redis.Redis, timeout: float = 60) -> None:
    """Empty the broker and rewrite its AOF, so each run starts from the same small file."""
    stack.reset_broker()
    client.bgrewriteaof()
    deadline = time.monotonic() + timeout
    while True:
        info = client.info("persistence")
        if not info["aof_rewrite_in_progress"] and not info["aof_rewrite_scheduled"]:
            return
        if time.monotonic() > deadline:
            raise TimeoutError("Redis did not finish rewriting its AOF")
        time.sleep(0.05)


def _paired(pairs: list[tuple[dict, dict]], kind: str, figure: str) -> float | None:
    ratios = [ratio(shipped[kind][figure], other[kind][figure]) for shipped, other in pairs]
    known = [r for r in ratios if r is not None]
    return round(median(known), 2) if known else None


def _summary(runs: list[dict]) -> dict:
    def middle(kind: str, figure: str) -> float:
        return round(median([r[kind][figure] for r in runs]), 3)

    return {
        "saturation": {"rate": round(median([r["saturation"]["rate"] for r in runs]), 1),
                       "p50_ms": middle("saturation", "p50_ms"), "p99_ms": middle("saturation", "p99_ms")},
        "fixed_rate": {"achieved": round(median([r["fixed_rate"]["achieved_rate"] for r in runs]), 1),
                       "p50_ms": middle("fixed_rate", "p50_ms"), "p99_ms": middle("fixed_rate", "p99_ms")},
        "runs": runs,
    }
