"""`recvault reconcile`: find recordings Twilio has that the archive lacks, report the gap, and queue them."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from typing import IO, TYPE_CHECKING

from recvault.commands.options import day
from recvault.settings import Settings

if TYPE_CHECKING:
    from recvault.workers.reconcile import GapReport

HELP = "compare Twilio's recordings with the archive and report the gap; --enqueue archives what is missing"


def _page_size(value: str) -> int:
    from recvault.workers.reconcile import MAX_PAGE_SIZE

    if not value.isdigit() or not 1 <= int(value) <= MAX_PAGE_SIZE:
        raise argparse.ArgumentTypeError(f"{value!r} is not a page size from 1 to {MAX_PAGE_SIZE}")
    return int(value)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--from", "--since", dest="date_from", required=True, type=day, metavar="D",
                        help="recordings created on or after this day (YYYY-MM-DD, UTC)")
    parser.add_argument("--to", "--until", dest="date_to", type=day, metavar="D",
                        help="and on or before this day (default: up to now)")
    parser.add_argument("--account", help="this AccountSid only (default: RECVAULT_TWILIO_ACCOUNT_SID and "
                                          "every subaccount in RECVAULT_TWILIO_SUBACCOUNT_TOKENS)")
    parser.add_argument("--enqueue", action="store_true", help="queue the missing recordings for archiving")
    parser.add_argument("--json", action="store_true", help="the gap report as one JSON object")
    parser.add_argument("--page-size", type=_page_size, default=1000, metavar="N",
                        help="recordings per Twilio list page (default and most: 1000)")


def run(args: argparse.Namespace, settings: Settings) -> int:
    from recvault.queue.celery_factory import create_celery
    from recvault.storage.s3 import S3Store
    from recvault.twilio.api import TwilioApi
    from recvault.workers.reconcile import accounts_to_reconcile, queue_missing, reconcile, reconcile_writer

    if args.date_to is not None and args.date_to < args.date_from:
        print(f"recvault: reconcile: --to {args.date_to} is before --from {args.date_from}", file=sys.stderr)
        return 2
    accounts = [args.account] if args.account else accounts_to_reconcile(settings)
    if not accounts:
        print("recvault: reconcile needs --account or RECVAULT_TWILIO_ACCOUNT_SID", file=sys.stderr)
        return 2
    twilio = TwilioApi.from_settings(settings)
    store = S3Store.from_settings(settings)
    enqueue = None
    if args.enqueue:
        # recvault's writer, as for callbacks: pending records, and one publication per recording.
        app = create_celery(settings)
        enqueue = queue_missing(app, reconcile_writer(settings, app), settings.queue, twilio)
    progress = _progress(sys.stderr)
    reports = [reconcile(twilio, store, settings.s3_prefix, account, date_from=args.date_from,
                         date_to=args.date_to, page_size=args.page_size, enqueue=enqueue, progress=progress)
               for account in accounts]
    if progress is not None:
        sys.stderr.write("\r\033[K")  # clear the progress line
    if args.json:
        print(json.dumps({"from": args.date_from, "to": args.date_to, "enqueue": args.enqueue,
                          "missing": sum(len(r.missing) for r in reports),
                          "erased": sum(len(r.erased) for r in reports),
                          "queued": sum(r.count("queued") for r in reports),
                          "accounts": [r.as_dict() for r in reports]}))
        return 0
    for report in reports:
        for gap in report.missing:
            print(f"missing {gap.sid} {gap.start_time or '-'}  {gap.duration or '?'} s  {gap.channels or '?'} ch  "
                  f"{gap.source or '-'}" + ("" if gap.outcome == "missing" else f"  {gap.outcome}"))
        for gap in report.erased:
            print(f"erased {gap.sid} {gap.start_time or '-'}  tombstone {gap.tombstone}  not queued")
    for report in reports:
        print(report.summary())
    return 0


def _progress(stream: IO[str]) -> Callable[[GapReport], None] | None:
    """A one-line progress indication, rewritten after each page, when `stream` is a terminal."""
    if not stream.isatty():
        return None

    def show(report: GapReport) -> None:
        stream.write(f"\r\033[Kreconcile {report.account_sid}: page {report.pages}, {report.listed} listed, "
                     f"{report.archived} archived, {len(report.missing)} missing")
        stream.flush()

    return show
