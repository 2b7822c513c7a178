"""An audit verification's report: report.json for tools, report.html for the auditor (every value escaped)."""

from __future__ import annotations

import html
import json
from pathlib import Path
from typing import Any

from recvault.audit.verify.archive import Report

_STYLE = ("body{font-family:sans-serif;margin:2em;color:#222}table{border-collapse:collapse;margin:1em 0}"
          "td,th{border:1px solid #bbb;padding:4px 8px;text-align:left;vertical-align:top}"
          ".ok{color:#070}.bad{color:#a00}pre{margin:0;white-space:pre-wrap}")


def _cell(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, indent=1, sort_keys=True, default=str)
    return f"<td><pre>{html.escape(text)}</pre></td>" if "\n" in text else f"<td>{html.escape(text)}</td>"


def render_html(report: Report) -> str:
    verdict = ('<p class="ok">No discrepancy found.</p>' if report.clean else
               f'<p class="bad">{len(report.findings)} discrepancy(ies) found.</p>')
    columns = sorted({what for counts in report.per_day.values() for what in counts})
    days = "".join("<tr>" + _cell(day) + "".join(_cell(report.per_day[day].get(c, 0)) for c in columns) + "</tr>"
                   for day in sorted(report.per_day))
    findings = "".join("<tr>" + _cell(f.check) + _cell(f.subject) + _cell(f.problem) + _cell(f.evidence) + "</tr>"
                       for f in report.findings)
    totals = "".join("<tr>" + _cell(k) + _cell(v) + "</tr>" for k, v in sorted(report.totals.items()))
    return (
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>recvault audit report</title>"
        f"<style>{_STYLE}</style></head><body>"
        f"<h1>recvault audit report</h1><p>Days {html.escape(report.date_from)} to {html.escape(report.date_to)} "
        f"(UTC); run from {html.escape(report.started_at)} to {html.escape(report.finished_at)}.</p>{verdict}"
        f"<h2>Summary</h2><table>{totals}</table>"
        "<h2>Per day</h2><table><tr><th>day</th>" + "".join(f"<th>{html.escape(c)}</th>" for c in columns)
        + f"</tr>{days}</table>"
        "<h2>Discrepancies</h2><table><tr><th>check</th><th>subject</th><th>problem</th><th>evidence</th></tr>"
        f"{findings}</table></body></html>\n"
    )


def write_report(report: Report, directory: Path) -> tuple[Path, Path]:
    directory.mkdir(parents=True, exist_ok=True)
    as_json, as_html = directory / "report.json", directory / "report.html"
    as_json.write_text(json.dumps(report.as_json(), indent=2, sort_keys=True, default=str) + "\n")
    as_html.write_text(render_html(report))
    return as_json, as_html
