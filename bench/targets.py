"""The performance targets, checked against a run's results: reached, missed, or not measured."""

from __future__ import annotations


def _recvault(ingest: dict) -> dict[str, dict]:
    return {name: r for name, r in ingest["servers"].items() if name.startswith("recvault")}


def _fair(ingest: dict) -> tuple[str, dict] | None:
    """recvault with as many processes as the tutorial has workers, else the most it ran with."""
    ours = _recvault(ingest)
    if not ours:
        return None
    name = max(ours, key=lambda n: (ours[n]["processes"] == 2, ours[n]["processes"]))
    return name, ours[name]


def check(results: dict) -> list[dict]:
    """One row per target: goal, what was measured, and whether it was reached."""
    rows = []
    ingest = results.get("ingest")
    if ingest and (fair := _fair(ingest)):
        name, ours = fair
        rows.append(_row("ingest vs the tutorial design", "≥ 3×", ours["vs_tutorial"] or 0, ">=", 3,
                         f"{ours['vs_tutorial']}× ({name})"))
        for name, r in _recvault(ingest).items():
            rows.append(_row(f"ingest p99 at {r['fixed_rate']['offered']:,}/s ({name})", "≤ 25 ms",
                             r["fixed_rate"]["p99_ms"], "<=", 25, f"{r['fixed_rate']['p99_ms']} ms"))
    archive = results.get("archive")
    if archive:
        for size in archive["sizes"]:
            rows.append(_row(f"archive MB/s vs storage ceiling ({size['size']})", "≥ 80 %",
                             size["vs_ceiling"] or 0, ">=", 0.8, f"{round(100 * (size['vs_ceiling'] or 0))} %"))
        # The archiving process: a prefork child, or the worker process itself (threads, one process).
        peak = max(max(size["recvault"]["child_peak_mb"], size["recvault"]["main_peak_mb"])
                   for size in archive["sizes"])
        rows.append(_row("worker peak RSS, any size (archiving process)", "≤ 150 MB", peak, "<=", 150,
                         f"{peak} MB"))
    latency = results.get("latency")
    if latency:
        twilio_like = next(c for c in latency["conditions"] if c["latency_s"] > 0)
        ours = twilio_like["designs"]["recvault worker (defaults)"]
        rows.append(_row("archive rec/s at 0.25 s latency, 2 MB/s per stream (default worker)", "≥ 20/s",
                         ours["rec_per_s"], ">=", 20, f"{ours['rec_per_s']}/s"))
        tree = max(c["designs"]["recvault worker (defaults)"]["tree_peak_mb"] for c in latency["conditions"])
        rows.append(_row("worker tree peak RSS under latency (default worker)", "≤ 400 MB", tree, "<=", 400,
                         f"{tree} MB"))
        busiest = max(c["designs"]["recvault worker (defaults)"]["child_peak_mb"] for c in latency["conditions"])
        rows.append(_row("worker process peak RSS under latency (default worker)", "≤ 150 MB", busiest, "<=", 150,
                         f"{busiest} MB"))
    e2e = results.get("e2e")
    if e2e:
        target = e2e["rates"][0]  # the plan's rate comes first; a sustainable one may follow
        rows.append(_row(f"end-to-end p50 at {target['rate']:g} one-minute dual/s", "≤ 1 s", target["p50_s"],
                         "<=", 1.0, f"{target['p50_s']} s (p99 {target['p99_s']} s)"))
    return rows


def _row(target: str, goal: str, value: float, op: str, limit: float, shown: str) -> dict:
    reached = value >= limit if op == ">=" else value <= limit
    return {"target": target, "goal": goal, "measured": shown, "reached": reached}
