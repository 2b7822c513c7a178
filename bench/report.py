"""The report of one run: Markdown tables and the full JSON, written side by side."""

from __future__ import annotations

import json
from pathlib import Path

from bench.machine import describe


def _table(header: list[str], rows: list[list[object]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join("–" if cell is None else str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def _x(value: float | None) -> str | None:
    return None if value is None else f"{value}×"


def _queued_once(name: str, result: dict) -> str:
    if "ceiling" in name:
        return "n/a"
    return "yes" if result["all_queued_once"] else "NO"


def _ingest(ingest: dict) -> str:
    rows = []
    for name, r in ingest["servers"].items():
        sat, fixed = r["saturation"], r["fixed_rate"]
        rows.append([name, f"{sat['rate']:,.0f}", sat["p50_ms"], sat["p99_ms"], _x(r["vs_tutorial"]),
                     _x(r["vs_ceiling"]), f"{fixed['achieved']:,.0f}", fixed["p50_ms"], fixed["p99_ms"],
                     _queued_once(name, r)])
    table = _table(["server", "saturation callbacks/s", "p50 ms", "p99 ms", "vs tutorial", "vs ceiling",
                    f"at {ingest['fixed_rate']:,}/s: achieved/s", "p50 ms", "p99 ms", "each queued once"], rows)
    ceiling = next(r for name, r in ingest["servers"].items() if "ceiling" in name)
    generator, wrk_rate = ceiling["generator"], ceiling["saturation"]["rate"]
    best = max(r["saturation"]["rate"] for name, r in ingest["servers"].items() if "ceiling" not in name)
    verdict = "so wrk was not what limited them" if wrk_rate >= 2 * best else "so wrk may have limited them"
    return (f"## Ingest\n\nSaturation: wrk, 1 thread, {ingest['connections']} keep-alive connections, unique "
            f"pre-signed callbacks. Fixed rate: the Python sender (`CallbackSender.send_many(rate=…)`) in its "
            f"own process. \"Each queued once\": the Redis queue held exactly one message per callback "
            f"answered 2xx, after every run.\n\n{table}\n\nLoad generators: wrk drove the ceiling at "
            f"{wrk_rate:,.0f}/s, {round(wrk_rate / best, 1)}× the fastest design measured, {verdict}; "
            f"the Python sender reaches {generator['achieved_rate']:,.0f}/s unthrottled against the ceiling.\n")


def _fsync(fsync: dict) -> str:
    rows = []
    for policy, r in fsync["policies"].items():
        sat, fixed = r["saturation"], r["fixed_rate"]
        shipped = " (shipped)" if policy == fsync["shipped"] else ""
        rows.append([f"`appendfsync {policy}`{shipped}", f"{sat['rate']:,.0f}", sat["p50_ms"], sat["p99_ms"],
                     f"{fixed['achieved']:,.0f}", fixed["p50_ms"], fixed["p99_ms"]])
    cost, paired = fsync["always_vs_everysec"], fsync["always_vs_everysec_paired"]
    rows.append(["always ÷ everysec (of the medians)", _x(cost["saturation_rate"]), None,
                 _x(cost["saturation_p99"]), None, None, _x(cost["fixed_rate_p99"])])
    rows.append(["always ÷ everysec (median of each pair of runs)", _x(paired["saturation_rate"]), None,
                 _x(paired["saturation_p99"]), None, None, _x(paired["fixed_rate_p99"])])
    table = _table(["broker fsync", "saturation callbacks/s", "p50 ms", "p99 ms",
                    f"at {fsync['fixed_rate']:,}/s: achieved/s", "p50 ms", "p99 ms"], rows)
    once = "yes" if fsync["all_queued_once"] else "NO"
    return (f"## Broker fsync: always vs everysec\n\n`{fsync['server']}` on the same Redis, switched between "
            f"the two policies (CONFIG SET) in alternating runs; wrk (1 thread, {fsync['connections']} "
            f"connections) at saturation and the Python sender at {fsync['fixed_rate']:,}/s. Medians of "
            f"{fsync['runs']} run(s) per policy. `always` is what recvault ships: neither a Redis kill -9 nor a "
            f"host crash then loses a callback answered 2xx, where with `everysec` a host crash may lose the "
            f"last second or two of them. Each queued once: {once}.\n\n{table}\n")


def _archive(archive: dict) -> str:
    rows = []
    for s in archive["sizes"]:
        ours, ceiling, naive = s["recvault"], s["ceiling"], s["naive"]
        rows.append([s["size"], f"{s['bytes'] / 1e6:,.2f}", s["recordings_per_run"], ours["rec_per_s"],
                     ours["mb_per_s"], f"{ceiling['mb_per_s']} ({ceiling['method']})", naive["mb_per_s"],
                     _x(s["vs_ceiling"]), _x(s["vs_naive"]), ours["child_peak_mb"] or ours["main_peak_mb"],
                     ours["tree_peak_mb"],
                     naive["peak_rss_mb"], ours["documents_missing"]])
    table = _table(["size", "MB each", "per run", "recvault rec/s", "recvault MB/s", "ceiling MB/s",
                    "naive MB/s", "vs ceiling", "vs naive", "archiving process peak RSS MB",
                    "worker tree peak RSS MB", "naive peak RSS MB", "docs missing"], rows)
    return (f"## Archive\n\nOne worker process, one archive at a time (`recvault worker --processes 1 -c "
            f"{archive['worker_concurrency']}`), "
            f"recordings queued at once, timed from enqueue to the last `archived` log line. Ceiling: boto3 "
            f"uploading the same bytes from memory (the faster of `upload_fileobj` and `put_object`). Naive: "
            f"`requests.get(...).content` then `put_object`.\n\n{table}\n")


def _latency(latency: dict) -> str:
    rows = []
    for c in latency["conditions"]:
        shown = f"{c['latency_s']:g} s, " + (f"{c['bytes_per_second'] / 1e6:g} MB/s" if c["bytes_per_second"]
                                            else "unthrottled")
        for name, d in c["designs"].items():
            rows.append([shown, name, d["recordings_per_run"], d["rec_per_s"], _x(d["vs_tutorial"]),
                         d["tree_peak_mb"], d["child_peak_mb"] or d["main_peak_mb"]])
    table = _table(["Twilio latency, per stream", "design", "per run", "rec/s", "vs tutorial",
                    "worker tree peak RSS MB", "busiest process peak RSS MB"], rows)
    return (f"## Archive under Twilio latency\n\n{latency['recording']} recordings queued at once, timed "
            f"from enqueue to the last archived; the simulator waits the latency before every resource and "
            f"media answer and streams each media file no faster than the bandwidth. Medians of "
            f"{latency['runs']} run(s) after a warm-up.\n\n{table}\n")


def _e2e(e2e: dict) -> str:
    rows = [[f"{r['rate']:g}/s", r["archived_per_s"], r["p50_s"], r["p99_s"], r["child_peak_mb"],
             r["tree_peak_mb"], r["documents_missing"]] for r in e2e["rates"]]
    table = _table(["offered", "archived/s", "p50 s", "p99 s", "worker child peak RSS MB",
                    "worker tree peak RSS MB", "docs missing"], rows)
    capacity = e2e["batch_capacity_rec_per_s"]
    chosen = (f"the count Scaling found fastest: {capacity} rec/s with recordings queued at once"
              if capacity else "the plan's default")
    return (f"## End to end\n\n{e2e['recording']} recordings: signed callbacks at a steady rate into "
            f"`recvault serve`, {e2e['seconds_per_run']:g} s per run, `recvault worker -c "
            f"{e2e['worker_concurrency']}` ({chosen}). Latency = callback sent → metadata document "
            f"written (the worker's `archived` log line, logged after the document's PUT; every document is "
            f"then confirmed by listing S3).\n\n{table}\n")


def _scaling(scaling: dict) -> str:
    rows = [[w["processes"], w["rec_per_s"], w["mb_per_s"], _x(w["vs_one"]), w["child_peak_mb"],
             w["tree_peak_mb"], _cpu(w["cpu_ms_per_recording"]), w["cpu_bound_rec_per_s"]]
            for w in scaling["workers"]]
    table = _table(["worker processes", "rec/s", "MB/s", "vs 1 process", "child peak RSS MB",
                    "tree peak RSS MB", "CPU ms per recording", "CPU-bound limit rec/s"], rows)
    return (f"## Scaling\n\n{scaling['recording']}, {scaling['recordings_per_run']} per run, on "
            f"{scaling['cores']} cores shared with the simulator, SeaweedFS and Redis. CPU ms per recording "
            f"is what each process spent during the measured runs; the limit is {scaling['cores']} cores' "
            f"worth of CPU divided by their sum, the most this machine could archive with every core busy."
            f"\n\n{table}\n")


def _cpu(per_recording: dict[str, float]) -> str:
    return ", ".join(f"{name} {ms}" for name, ms in per_recording.items())


def _targets(rows: list[dict]) -> str:
    table = _table(["target", "goal", "measured", "reached"],
                   [[r["target"], r["goal"], r["measured"], "yes" if r["reached"] else "**no**"] for r in rows])
    return f"## Targets\n\n{table}\n"


def markdown(results: dict) -> str:
    """The whole report as Markdown."""
    plan = results["plan"]
    parts = [f"# recvault benchmarks, {results['started_at']}\n",
             describe(results["machine"]) + "  \n" +
             f"**Plan:** `{plan['name']}`: medians of {plan['runs']} run(s) after one warm-up run; "
             f"took {results['seconds']:.0f} s.\n"]
    for name, render in (("ingest", _ingest), ("fsync", _fsync), ("archive", _archive), ("latency", _latency),
                         ("e2e", _e2e), ("scaling", _scaling)):
        if name in results:
            parts.append(render(results[name]))
    parts.append(_targets(results["targets"]))
    return "\n".join(parts)


def write(results: dict, directory: Path) -> tuple[Path, Path]:
    """`<UTC timestamp>.md` and `.json` in `directory`; returns both paths."""
    directory.mkdir(parents=True, exist_ok=True)
    stem = results["started_at"].replace(":", "").replace("-", "")
    md, js = directory / f"{stem}.md", directory / f"{stem}.json"
    md.write_text(markdown(results))
    js.write_text(json.dumps(results, indent=2, ensure_ascii=False) + "\n")
    return md, js
