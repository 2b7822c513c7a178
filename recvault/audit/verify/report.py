"""An audit verification's report: report.json for tools, report.html for the auditor to file.

The HTML page states in words what was checked and how, what was not covered, each finding
by kind with its evidence, the seal roots checked, and the SHA-256 of report.json (the data
it is drawn from), so the two files can be filed together and checked against each other.
Every value is escaped.
"""

from __future__ import annotations

import hashlib
import html
import json
from pathlib import Path
from typing import Any

from recvault.audit.findings import KINDS
from recvault.audit.verify.archive import Report

_STYLE = ("body{font-family:sans-serif;margin:2em;color:#222;max-width:70em}table{border-collapse:collapse;"
          "margin:1em 0}td,th{border:1px solid #bbb;padding:4px 8px;text-align:left;vertical-align:top}"
          ".ok{color:#070}.bad{color:#a00}pre{margin:0;white-space:pre-wrap}code{font-size:90%}")
# Per-day counters, in words.
_COUNTERS = {
    "recordings": "recordings archived",
    "rehashed": "media re-hashed",
    "expired": "media expired (retention over, no hold)",
    "versions_listed": "object versions listed",
    "audit_entries": "audit entries",
    "events_absent": "absent callbacks",
    "events_failed": "failed callbacks",
}


def _cell(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, indent=1, sort_keys=True, default=str)
    return f"<td><pre>{html.escape(text)}</pre></td>" if "\n" in text else f"<td>{html.escape(text)}</td>"


def _method(report: Report) -> list[str]:
    totals = report.totals
    rehashed = totals.get("rehashed", 0)
    recordings = totals.get("recordings", 0)
    return [
        f"Listed every version and delete marker of recvault's objects for these days "
        f"({totals.get('versions_listed', 0)} versions), and held each to what recvault recorded writing it: "
        "objects written once must hold one version; each metadata document version must be one an audit "
        "entry names by its SHA-256.",
        f"Compared {recordings} archived recording(s) with their audit chain's `archived` entry: media version, "
        f"size and S3 checksum for all of them; SHA-256 recomputed from the stored bytes for {rehashed}"
        + (" (a sample)." if report.sampled else " (all)."),
        f"Checked {totals.get('audit_entries', 0)} audit entries read at their original versions: numbering, "
        "hash links, nothing written over them, and each entry of a sealed period in its seal.",
        f"Checked {totals.get('seals_checked', 0)} seal(s): Merkle root, count, the link to the previous seal's "
        f"original version, the COMPLIANCE lock, and every leaf's object unchanged. Witness: {report.witness}.",
        f"Held {totals.get('accepted_completed', 0)} accepted completed callback(s) to account: "
        f"{totals.get('accepted_rows', 0)} ledger row(s) flushed to S3 and {report.ledger_tail} "
        "(rows not flushed yet). Tombstones and dead letters counted only where the recording's chain vouches "
        "for them.",
        "Checked the Object Lock mode, retain-until, legal hold and tags each recording's policy decided, and "
        "the holds registry against the entries that vouch for its records.",
    ]


def render_html(report: Report, json_sha256: str) -> str:
    verdict = ('<p class="ok">No discrepancy found.</p>' if report.clean else
               f'<p class="bad">{len(report.findings)} discrepancy(ies) found.</p>')
    method = "".join(f"<li>{html.escape(line)}</li>" for line in _method(report))
    gaps = "".join(f"<li>{html.escape(line)}</li>" for line in report.not_covered) or "<li>nothing</li>"
    by_kind: dict[str, int] = {}
    for finding in report.findings:
        by_kind[finding.kind or finding.check] = by_kind.get(finding.kind or finding.check, 0) + 1
    kinds = "".join("<tr>" + _cell(kind) + _cell(KINDS.get(kind, "")) + _cell(count) + "</tr>"
                    for kind, count in sorted(by_kind.items()))
    findings = "".join("<tr>" + _cell(f.kind or f.check) + _cell(f.subject) + _cell(f.problem) + _cell(f.evidence)
                       + "</tr>" for f in report.findings)
    seals = "".join("<tr>" + "".join(_cell(seal.get(k, "")) for k in ("period_start", "count", "root", "sha256", "key"))
                    + "</tr>" for seal in report.seals)
    columns = [c for c in _COUNTERS if any(c in counts for counts in report.per_day.values())]
    days = "".join("<tr>" + _cell(day) + "".join(_cell(report.per_day[day].get(c, 0)) for c in columns) + "</tr>"
                   for day in sorted(report.per_day))
    return (
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>recvault audit report</title>"
        f"<style>{_STYLE}</style></head><body>"
        "<h1>recvault audit report</h1>"
        f"<p>Scope: days {html.escape(report.date_from)} to {html.escape(report.date_to)} (UTC), by recording start "
        "date, entry time and callback acceptance. Run from "
        f"{html.escape(report.started_at)} to {html.escape(report.finished_at)}.</p>{verdict}"
        f"<h2>Method</h2><ul>{method}</ul>"
        f"<h2>Not covered by this run</h2><ul>{gaps}</ul>"
        + (f"<h2>Findings by kind</h2><table><tr><th>kind</th><th>meaning</th><th>count</th></tr>{kinds}</table>"
           "<h2>Findings</h2><table><tr><th>kind</th><th>subject</th><th>problem</th><th>evidence</th></tr>"
           f"{findings}</table>" if report.findings else "")
        + "<h2>Seals checked</h2>"
        + (f"<table><tr><th>period start</th><th>entries</th><th>Merkle root</th><th>seal SHA-256</th><th>key</th>"
           f"</tr>{seals}</table>" if report.seals else "<p>None: no period of these days is sealed yet.</p>")
        + "<h2>Per day</h2><table><tr><th>day</th>"
        + "".join(f"<th>{html.escape(_COUNTERS[c])}</th>" for c in columns) + f"</tr>{days}</table>"
        f"<p>This page is drawn from report.json, whose SHA-256 is <code>{html.escape(json_sha256)}</code>. "
        "`recvault audit verify` records both files' SHA-256 in the archive's audit trail (an "
        "`audit-verified` entry of the day's system chain).</p></body></html>\n"
    )


def write_report(report: Report, directory: Path) -> tuple[Path, Path]:
    directory.mkdir(parents=True, exist_ok=True)
    as_json, as_html = directory / "report.json", directory / "report.html"
    data = (json.dumps(report.as_json(), indent=2, sort_keys=True, default=str) + "\n").encode()
    as_json.write_bytes(data)
    as_html.write_text(render_html(report, hashlib.sha256(data).hexdigest()))
    return as_json, as_html
