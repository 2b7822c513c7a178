"""Prometheus alerts (promtool check and unit tests) and the Grafana dashboard, on the metrics recvault exports."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from recvault.ingest.metrics import IngestMetrics
from recvault.workers.metrics import WorkerMetrics

ROOT = Path(__file__).resolve().parents[2]
ALERTS = ROOT / "deploy" / "prometheus" / "alerts.yml"
ALERTS_TEST = Path(__file__).with_name("alerts_test.yml")
PROMETHEUS_CONFIG = ROOT / "deploy" / "prometheus" / "prometheus.yml"
DASHBOARD = ROOT / "deploy" / "grafana" / "recvault.json"
# The workers' metrics (name: type, label names), as `recvault worker` exports them.
WORKER_METRICS = {
    "recvault_archived_recordings_total": ("counter", set()),
    "recvault_archived_bytes_total": ("counter", set()),
    "recvault_task_seconds": ("histogram", {"task"}),
    "recvault_task_retries_total": ("counter", {"error"}),
    "recvault_dead_letters_total": ("counter", {"error"}),
    "recvault_twilio_errors_total": ("counter", {"status"}),
    "recvault_s3_errors_total": ("counter", {"operation", "status"}),
    "recvault_archives_in_flight": ("gauge", set()),
    "recvault_callback_to_archive_seconds": ("histogram", set()),
}
# Label names of ingest's labelled metrics; checked against the real metrics below.
INGEST_LABELS = {"recvault_callbacks_accepted": {"outcome"}, "recvault_callbacks_rejected": {"reason"}}
# Labels Prometheus adds to every series it scrapes, and histograms' buckets.
TARGET_LABELS = {"instance", "job", "le"}
METRIC = re.compile(r"\b(recvault_[a-z0-9_]+)\b")
# A counter C's events in a window W, its first appearance included (see alerts.yml's header).
COUNTER_IN_WINDOW = re.compile(
    r"\((?P<c>recvault_[a-z0-9_]+(?:\{[^}]*\})?) unless (?P=c) offset (?P<w>\w+)\) or increase\((?P=c)\[(?P=w)\]\)")
# Grafana's interval variables, replaced by a duration to check a panel's expression as PromQL.
GRAFANA_VARIABLES = {"$__rate_interval": "5m", "$__interval": "1m", "$__range": "1h"}


def promtool() -> str:
    found = shutil.which("promtool")
    if found is None:
        pytest.fail("promtool is required (apt-get install prometheus); .ci/run installs it")
    return found


def run_promtool(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([promtool(), *map(str, args)], capture_output=True, text=True, timeout=60)


def test_the_worker_metrics_listed_here_are_the_ones_workers_export() -> None:
    exported = {family.name: family.type for family in WorkerMetrics().registry.collect()}
    listed = {(base.removesuffix("_total") if kind == "counter" else base): kind
              for base, (kind, _) in WORKER_METRICS.items()}
    assert listed.items() <= exported.items()


def series_names(base: str, kind: str) -> set[str]:
    """The series a metric family exposes, as PromQL names them."""
    if kind == "counter":
        return {base if base.endswith("_total") else base + "_total"}
    if kind == "histogram":
        return {f"{base}_bucket", f"{base}_sum", f"{base}_count"}
    return {base}


def known_series() -> dict[str, set[str]]:
    """Every series name recvault exports, with the label names it carries."""
    metrics = IngestMetrics()
    known: dict[str, set[str]] = {}
    for family in metrics.registry.collect():
        labels = INGEST_LABELS.get(family.name, set())
        for name in series_names(family.name, family.type):
            known[name] = labels
    for counter, labels in INGEST_LABELS.items():  # the label names really are these
        attribute = {"recvault_callbacks_accepted": metrics.accepted, "recvault_callbacks_rejected": metrics.rejected}
        attribute[counter].labels(**{label: "x" for label in labels})
    for base, (kind, labels) in WORKER_METRICS.items():
        for name in series_names(base.removesuffix("_total") if kind == "counter" else base, kind):
            known[name] = labels
    return known


def check_expression(expr: str, known: dict[str, set[str]], where: str) -> set[str]:
    """The recvault series `expr` reads; fails on a name or grouping label recvault does not export."""
    used = set(METRIC.findall(expr))
    unknown = used - set(known)
    assert not unknown, f"{where}: {sorted(unknown)} are not metrics recvault exports"
    labels = set().union(TARGET_LABELS, *(known[name] for name in used))
    for group in re.findall(r"\bby \(([^)]*)\)", expr):
        grouped = {label.strip() for label in group.split(",") if label.strip()}
        assert grouped <= labels, f"{where}: grouped by {sorted(grouped - labels)}, which {sorted(used)} do not carry"
    return used


def test_the_alerts_pass_promtool_check_and_their_unit_tests() -> None:
    checked = run_promtool("check", "rules", ALERTS)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    tested = run_promtool("test", "rules", ALERTS_TEST)
    assert tested.returncode == 0, tested.stdout + tested.stderr
    tested_alerts = set(re.findall(r"alertname: (\w+)", ALERTS_TEST.read_text()))
    assert {"RecvaultBrokerDown", "RecvaultDeadLetters", "RecvaultNoArchivesWhileCallbacksArrive",
            "RecvaultSpoolGrowing"} <= tested_alerts
    config = run_promtool("check", "config", PROMETHEUS_CONFIG)  # the Compose file's Prometheus, with the alerts
    assert config.returncode == 0, config.stdout + config.stderr


def test_every_counter_alert_counts_a_series_first_appearance_and_is_unit_tested() -> None:
    """Counters are read only as alerts.yml's header says: `(C unless C offset W) or increase(C[W])`."""
    counters = {name for name in known_series() if name.endswith(("_total", "_bucket", "_count", "_sum"))}
    tested_alerts = set(re.findall(r"alertname: (\w+)", ALERTS_TEST.read_text()))
    counter_alerts = set()
    for group in yaml.safe_load(ALERTS.read_text())["groups"]:
        for rule in group["rules"]:
            expr = " ".join(rule["expr"].split())
            if not set(METRIC.findall(expr)) & counters:
                continue
            counter_alerts.add(rule["alert"])
            rest = COUNTER_IN_WINDOW.sub("", expr)
            assert not set(METRIC.findall(rest)) & counters, f"{rule['alert']} reads a counter otherwise: {rest}"
    assert {"RecvaultDeadLetters", "RecvaultTwilioCredentialsRefused", "RecvaultS3AccessDenied",
            "RecvaultCallbacksRefused"} <= counter_alerts
    assert counter_alerts <= tested_alerts, f"not unit-tested: {sorted(counter_alerts - tested_alerts)}"


def test_every_alert_matters_says_what_to_do_and_reads_only_exported_metrics() -> None:
    known = known_series()
    rules = [rule for group in yaml.safe_load(ALERTS.read_text())["groups"] for rule in group["rules"]]
    names = {rule["alert"] for rule in rules}
    assert {"RecvaultSpoolGrowing", "RecvaultBrokerDown", "RecvaultDeadLetters",
            "RecvaultNoArchivesWhileCallbacksArrive", "RecvaultCallbackToArchiveSlow"} <= names
    for rule in rules:
        assert rule["labels"]["severity"] in {"critical", "warning"}, rule["alert"]
        assert rule["annotations"]["summary"] and rule["annotations"]["description"], rule["alert"]
        used = check_expression(rule["expr"], {**known, "up": set()}, rule["alert"])
        assert used or "up{" in rule["expr"], rule["alert"]


def test_the_dashboard_is_well_formed_and_shows_every_exported_metric(tmp_path) -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    assert dashboard["uid"] == "recvault" and dashboard["title"] and isinstance(dashboard["schemaVersion"], int)
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource" and variables["datasource"]["query"] == "prometheus"
    known = known_series()
    panels = dashboard["panels"]
    ids = [panel["id"] for panel in panels]
    assert len(ids) == len(set(ids)), "panel ids repeat"
    shown: set[str] = set()
    expressions: list[str] = []
    cells: set[tuple[int, int]] = set()
    for panel in panels:
        grid = panel["gridPos"]
        assert grid["x"] + grid["w"] <= 24 and grid["h"] > 0, panel["title"]
        covered = {(x, y) for x in range(grid["x"], grid["x"] + grid["w"])
                   for y in range(grid["y"], grid["y"] + grid["h"])}
        assert not covered & cells, f"panel {panel['title']!r} overlaps another"
        cells |= covered
        if panel["type"] == "row":
            continue
        assert panel["type"] in {"timeseries", "stat"}, panel["title"]
        assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, panel["title"]
        assert panel["targets"] and panel.get("description"), panel["title"]
        refs = [target["refId"] for target in panel["targets"]]
        assert len(refs) == len(set(refs)), panel["title"]
        for target in panel["targets"]:
            shown |= check_expression(target["expr"], known, panel["title"])
            expressions.append(target["expr"])
    # Ingest rate and refusals, spool, broker, archive rate, latencies, errors, dead letters: every one.
    assert set(known) - shown <= {name for name in known if name.endswith(("_sum", "_bucket", "_count"))}
    assert {base for base, (kind, _) in WORKER_METRICS.items() if kind == "histogram"} | {
        "recvault_callback_seconds", "recvault_enqueue_seconds"} <= {
        name.removesuffix("_bucket") for name in shown if name.endswith("_bucket")}

    # Each expression, with Grafana's variables filled in, is valid PromQL.
    rules = tmp_path / "dashboard_rules.yml"
    resolved = [_resolve(expr) for expr in expressions]
    rules.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": [
        {"record": f"recvault:dashboard:{n}", "expr": expr} for n, expr in enumerate(resolved)]}]}))
    checked = run_promtool("check", "rules", rules)
    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_a_dashboard_expression_on_a_metric_recvault_does_not_export_is_caught() -> None:
    with pytest.raises(AssertionError, match="not metrics recvault exports"):
        check_expression("sum(rate(recvault_callbacks_acepted_total[5m]))", known_series(), "typo")
    with pytest.raises(AssertionError, match="grouped by"):
        check_expression("sum by (reasons) (rate(recvault_callbacks_rejected_total[5m]))", known_series(), "typo")


def _resolve(expr: str) -> str:
    for variable, value in GRAFANA_VARIABLES.items():
        expr = expr.replace(variable, value)
    return expr
