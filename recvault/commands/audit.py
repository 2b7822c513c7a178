"""`recvault audit verify|show`: prove the archive to an auditor; one recording's chain of custody.

`recvault audit` with no action (and its older `--date`, `--deep`, `--json`) runs `verify`.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import TextIO

from recvault.commands.options import actor_of, add_actor, day, recording_sid
from recvault.settings import Settings

HELP = "verify the archive and its audit trail (verify), or show one recording's chain of custody (show)"
# The progress bar redraws at most this often: a long run on a terminal, never in a log.
REDRAW_SECONDS = 0.2


def _sample(value: str) -> tuple[int | None, float | None]:
    try:
        number = float(value)
    except ValueError:
        number = -1.0
    if 0 < number < 1:
        return None, number
    if number >= 1 and number == int(number):
        return int(number), None
    raise argparse.ArgumentTypeError(f"--sample {value!r}: give a whole number of recordings (≥ 1) or a "
                                     "fraction between 0 and 1")


def _verify_options(parser: argparse.ArgumentParser, *, legacy: bool) -> None:
    parser.add_argument("--from", dest="date_from", type=day,
                        help="first day (UTC); default: the archive's first day")
    parser.add_argument("--to", dest="date_to", type=day, help="last day (UTC); default: today")
    parser.add_argument("--report", type=Path, help="write report.html and report.json into this directory")
    parser.add_argument("--sample", type=_sample,
                        help="re-hash only N recordings, or this fraction of them (default: all)")
    parser.add_argument("--json", action="store_true", help="print the report as JSON on stdout")
    add_actor(parser)
    if legacy:
        parser.add_argument("--date", type=day, help="one day: --from D --to D")
        parser.add_argument("--deep", action="store_true", help="kept for older scripts: verify re-hashes anyway")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    _verify_options(parser, legacy=True)
    sub = parser.add_subparsers(dest="audit_command", metavar="ACTION")
    _verify_options(sub.add_parser("verify", help="check chains, seals, objects, locks, delete markers and "
                                                  "completeness; exit 1 on any discrepancy"), legacy=False)
    show = sub.add_parser("show", help="the chain of custody of one recording")
    show.add_argument("recording_sid", type=recording_sid)
    show.add_argument("--json", action="store_true", help="one JSON line per step")
    show.add_argument("--date", dest="ledger_dates", type=day, action="append",
                      help="look for its accepted callbacks on this day (repeatable; default: around its first "
                           "audit entry)")


class ProgressBar:
    """A one-line bar on a terminal; silent when stderr is not one (logs, CI)."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream
        self.enabled = stream.isatty()
        self.drawn = 0.0

    def __call__(self, done: int, total: int, label: str) -> None:
        now = time.monotonic()
        if not self.enabled or (now - self.drawn < REDRAW_SECONDS and done < total):
            return
        self.drawn = now
        filled = int(30 * done / max(total, 1))
        self.stream.write(f"\r[{'#' * filled}{'.' * (30 - filled)}] {done}/{total} {label:<32}")
        self.stream.flush()

    def close(self) -> None:
        if self.enabled and self.drawn:
            self.stream.write("\n")


def run(args: argparse.Namespace, settings: Settings) -> int:
    from recvault.storage.s3 import S3Store

    store = S3Store.from_settings(settings)
    if args.audit_command == "show":
        return _show(store, settings.s3_prefix, args)
    return _verify(store, settings, args)


def _verify(store: object, settings: Settings, args: argparse.Namespace) -> int:
    from recvault.audit import process_key
    from recvault.audit.append import process_actor
    from recvault.audit.ledger_tail import tail_from_settings
    from recvault.audit.verify.archive import Sample, first_day, verify_archive
    from recvault.audit.verify.report import write_report
    from recvault.audit.witness import witness_from_settings
    from recvault.audit.write import write_system_audit

    prefix = settings.s3_prefix

    today = datetime.now(UTC).date().isoformat()
    one_day = getattr(args, "date", None)
    date_from = args.date_from or one_day or first_day(store, prefix) or today  # type: ignore[arg-type]
    date_to = args.date_to or one_day or today
    if date_to < date_from:
        print(f"recvault: audit verify: --to {date_to} is before --from {date_from}", file=sys.stderr)
        return 2
    count, fraction = args.sample or (None, None)
    bar = ProgressBar(sys.stderr)
    # The ledger rows not flushed yet: read from Redis, never consumed; None when it does not answer.
    tail = tail_from_settings(settings)
    try:
        report = verify_archive(store, prefix, date_from, date_to,  # type: ignore[arg-type]
                                sample=Sample(count, fraction), progress=bar,
                                tail=[row for _, row, _ in tail.rows if row is not None] if tail.reachable else None,
                                malformed_tail=[(stream_id, raw) for stream_id, row, raw in tail.rows if row is None],
                                witness=witness_from_settings(settings),
                                audit_key=process_key.from_settings(settings))
    finally:
        bar.close()
    hashes: dict[str, str] = {}
    if args.report:
        written = write_report(report, args.report)
        hashes = {path.name: hashlib.sha256(path.read_bytes()).hexdigest() for path in written}
        print(f"report: {written[1]} and {written[0]}", file=sys.stderr)
        for name, digest in sorted(hashes.items()):
            print(f"sha256 {digest}  {name}", file=sys.stderr)
    # The audit of the archive is audited too: each run is an entry of the day's system chain.
    write_system_audit(store, prefix, "audit-verified",  # type: ignore[arg-type]
                       {"from": date_from, "to": date_to, "clean": report.clean, "findings": len(report.findings),
                        "kinds": sorted({f.kind for f in report.findings if f.kind}), "totals": report.totals,
                        "ledger_tail": report.ledger_tail, "witness": report.witness, "report_sha256": hashes},
                       datetime.now(UTC), actor=f"{actor_of(args)}@{process_actor()}")
    if args.json:
        print(json.dumps(report.as_json(), sort_keys=True, default=str))
    else:
        for finding in report.findings:
            print(f"DISCREPANCY [{finding.kind or finding.check}] {finding.subject}: {finding.problem}")
    totals = report.totals
    completed = totals.get("accepted_completed", 0)
    unaccounted = sum(1 for finding in report.findings if finding.kind == "vanished-recording")
    completeness = (f"{completed - unaccounted} of {completed} accepted completed callback(s) accounted for"
                    if completed else "no accepted completed callback for these days in the ledger (S3, or the "
                    "rows still in Redis), so completeness covered nothing")
    print(f"verified {date_from}..{date_to}: {totals.get('recordings', 0)} recording(s) "
          f"({totals.get('rehashed', 0)} re-hashed), {totals.get('versions_listed', 0)} object version(s), "
          f"{totals.get('audit_entries', 0)} audit entr(ies), {totals.get('seals_checked', 0)} seal(s); "
          f"ledger tail: {report.ledger_tail}; {completeness}: {len(report.findings)} discrepancy(ies)",
          file=sys.stderr)
    for gap in report.not_covered:
        print(f"not covered: {gap}", file=sys.stderr)
    return 0 if report.clean else 1


def _show(store: object, prefix: str, args: argparse.Namespace) -> int:
    from recvault.audit.history import recording_history

    steps = recording_history(store, prefix, args.recording_sid, ledger_days=args.ledger_dates)  # type: ignore[arg-type]
    if not steps:
        print(f"recvault: audit show: nothing recorded for {args.recording_sid}", file=sys.stderr)
        return 1
    for step in steps:
        if args.json:
            print(json.dumps(step.__dict__, sort_keys=True, default=str))
        else:
            print(f"{step.at}  {step.action:<28} {step.actor:<32} {step.link:<10} {step.sealed}\n"
                  f"    {json.dumps(step.details, sort_keys=True, default=str)}"
                  + (f"\n    sha256 {step.sha256}" if step.sha256 else ""))
    broken = any(s.link.startswith(("BROKEN", "entry")) or s.sealed.startswith("BROKEN") for s in steps)
    return 1 if broken else 0
