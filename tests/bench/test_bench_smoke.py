"""The benchmark harness, run once at its smallest size: the report has every part. Nothing is timed."""

from __future__ import annotations

import json

import pytest

from bench.plan import SMOKE
from bench.report import write
from bench.runner import run_benchmarks
from bench.targets import check

SERVER_FIGURES = {"rate", "p50_ms", "p99_ms", "runs"}
DESIGN_FIGURES = {"rec_per_s", "mb_per_s", "runs"}


pytestmark = pytest.mark.system


def test_smallest_run_reports_every_section_as_markdown_and_json(tmp_path) -> None:
    markdown_path, json_path = write(run_benchmarks(SMOKE), tmp_path)
    report = json.loads(json_path.read_text())

    assert {"machine", "plan", "ingest", "archive", "latency", "e2e", "scaling", "targets"} <= report.keys()
    assert {"cores", "memory_gib", "cpu_model", "python", "packages"} <= report["machine"].keys()
    servers = report["ingest"]["servers"]
    assert [name.split(":")[0].split(" ")[0] for name in servers] == ["aiohttp", "tutorial", "recvault"]
    for server in servers.values():
        assert SERVER_FIGURES <= server["saturation"].keys()
        assert {"achieved", "p50_ms", "p99_ms", "runs"} <= server["fixed_rate"].keys()
        assert {"vs_ceiling", "vs_tutorial", "all_queued_once"} <= server.keys()
    (size,) = report["archive"]["sizes"]
    for design in ("recvault", "ceiling", "naive"):
        assert DESIGN_FIGURES <= size[design].keys()
    assert {"vs_ceiling", "vs_naive"} <= size.keys()
    assert {"child_peak_mb", "tree_peak_mb"} <= size["recvault"].keys()
    assert all({"rate", "p50_s", "p99_s"} <= entry.keys() for entry in report["e2e"]["rates"])
    assert [c["latency_s"] for c in report["latency"]["conditions"]] == [0.25, 0.0]
    for condition in report["latency"]["conditions"]:
        assert len(condition["designs"]) == 4
        assert all(DESIGN_FIGURES | {"tree_peak_mb", "vs_tutorial"} <= d.keys() for d in condition["designs"].values())
    assert [w["processes"] for w in report["scaling"]["workers"]] == list(SMOKE.scaling_workers)
    assert all({"rec_per_s", "cpu_ms_per_recording"} <= w.keys() for w in report["scaling"]["workers"])
    assert all({"target", "goal", "measured", "reached"} <= row.keys() for row in report["targets"])

    # Every design measured something, and every median sits within its spread.
    for server in servers.values():
        assert server["saturation"]["rate"] > 0 and len(server["saturation"]["runs"]) >= 1
        assert 0 < server["saturation"]["p50_ms"] <= server["saturation"]["p99_ms"]
        assert server["fixed_rate"]["achieved"] > 0
        assert server["all_queued_once"] is True
    for design in ("recvault", "ceiling", "naive"):
        assert size[design]["rec_per_s"] > 0 and size[design]["mb_per_s"] > 0
    # The archiving process: the worker process itself (threads pool) or a prefork child.
    busiest = max(size["recvault"]["child_peak_mb"], size["recvault"]["main_peak_mb"])
    assert size["recvault"]["tree_peak_mb"] >= busiest > 0
    for condition in report["latency"]["conditions"]:
        assert all(d["rec_per_s"] > 0 and d["tree_peak_mb"] > 0 for d in condition["designs"].values())
    assert all(0 < e["p50_s"] <= e["p99_s"] and e["rate"] > 0 for e in report["e2e"]["rates"])
    assert all(w["rec_per_s"] > 0 for w in report["scaling"]["workers"])
    # The targets are the ones the results meet or miss, each judged from the figures in the report.
    assert report["targets"] == check(report)
    names = " | ".join(row["target"] for row in report["targets"])
    for target in ("ingest vs the tutorial design", "ingest p99", "archive MB/s vs storage ceiling",
                   "worker peak RSS", "archive rec/s at 0.25 s latency", "worker tree peak RSS under latency",
                   "end-to-end p50"):
        assert target in names
    assert all(isinstance(row["reached"], bool) for row in report["targets"])

    text = markdown_path.read_text()
    for heading in ("## Ingest", "## Archive", "## Archive under Twilio latency", "## End to end", "## Scaling",
                    "## Targets"):
        assert heading in text
