"""The broker-fsync section: `appendfsync always` (shipped) against `everysec`, same run, same ingest."""

from __future__ import annotations

import pytest

from bench import fsync
from bench.plan import SMOKE
from bench.report import markdown
from bench.stack import running_stack


def _run(policy: str, rate: float, p99: float) -> dict:
    figures = {"rate": rate, "p50_ms": p99 / 4, "p99_ms": p99, "achieved_rate": 1000.0, "queue_check": "ok"}
    return {"policy": policy, "saturation": dict(figures), "fixed_rate": dict(figures)}


def test_the_report_gives_each_policy_and_what_always_costs() -> None:
    runs = {"always": [_run("always", 900, 20), _run("always", 1100, 30)],
            "everysec": [_run("everysec", 1000, 10), _run("everysec", 1000, 20)]}
    policies = {policy: fsync._summary(policy_runs) for policy, policy_runs in runs.items()}
    pairs = list(zip(runs["always"], runs["everysec"], strict=True))
    section = {"server": "recvault ×2", "connections": 32, "fixed_rate": 1000, "runs": 2, "shipped": "always",
               "policies": policies, "all_queued_once": True,
               "always_vs_everysec": {"saturation_rate": 1.0, "saturation_p99": 1.67, "fixed_rate_p99": 1.67},
               "always_vs_everysec_paired": {key: fsync._paired(pairs, kind, figure) for key, kind, figure in (
                   ("saturation_rate", "saturation", "rate"), ("saturation_p99", "saturation", "p99_ms"),
                   ("fixed_rate_p99", "fixed_rate", "p99_ms"))}}

    assert policies["always"]["saturation"]["rate"] == 1000.0
    assert section["always_vs_everysec_paired"] == {"saturation_rate": 1.0, "saturation_p99": 1.75,
                                                    "fixed_rate_p99": 1.75}  # 2.0 and 1.5
    text = markdown({"started_at": "2026-01-01T00:00:00Z", "seconds": 1.0, "plan": SMOKE.as_dict(),
                     "machine": {"cores": 2, "memory_gib": 1, "cpu_model": "cpu", "os": "Linux", "python": "3.11",
                                 "packages": {}, "load_average_at_start": [0, 0, 0], "redis_server": "Redis",
                                 "wrk": "wrk"},
                     "fsync": section, "targets": []})
    assert "## Broker fsync: always vs everysec" in text
    assert "| `appendfsync always` (shipped) | 1,000 |" in text
    assert "| always ÷ everysec (median of each pair of runs) | 1.0× | – | 1.75× |" in text


@pytest.mark.system
def test_the_section_measures_both_policies_and_leaves_the_shipped_one() -> None:
    with running_stack() as stack:
        result = fsync.run(stack, SMOKE, {})
        with stack.client() as client:
            assert client.config_get("appendfsync") == {"appendfsync": "always"}
            assert client.config_get("auto-aof-rewrite-percentage") == {"auto-aof-rewrite-percentage": "100"}

    assert set(result["policies"]) == {"always", "everysec"} and result["shipped"] == "always"
    for policy, summary in result["policies"].items():
        assert [run["policy"] for run in summary["runs"]] == [policy] * SMOKE.runs
        assert summary["saturation"]["rate"] > 0 and summary["fixed_rate"]["achieved"] > 0
        assert 0 < summary["saturation"]["p50_ms"] <= summary["saturation"]["p99_ms"]
    assert result["all_queued_once"] is True
    for ratios in (result["always_vs_everysec"], result["always_vs_everysec_paired"]):
        assert set(ratios) == {"saturation_rate", "saturation_p99", "fixed_rate_p99"}
        assert all(value is not None and value > 0 for value in ratios.values())
