"""`recvault audit`: prove every archived recording is present and unchanged."""

from __future__ import annotations

import argparse
import json
import sys

from recvault.settings import Settings

HELP = "check every archived recording against its metadata document (size, checksum)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--date", help="only this partition (YYYY-MM-DD)")
    parser.add_argument("--deep", action="store_true", help="re-read every object and recompute SHA-256")
    parser.add_argument("--json", action="store_true", help="one JSON line per recording")


def run(args: argparse.Namespace, settings: Settings) -> int:
    from recvault.storage.s3 import S3Store
    from recvault.workers.audit import audit_archive

    store = S3Store.from_settings(settings)
    findings = audit_archive(store, settings.s3_prefix, date=args.date, deep=args.deep)
    leftovers = store.incomplete_uploads(settings.s3_prefix)
    for finding in findings:
        if args.json:
            print(json.dumps(finding.__dict__))
        elif finding.problem:
            print(f"PROBLEM {finding.recording_sid} {finding.media_key}: {finding.problem}")
    bad = sum(1 for f in findings if f.problem)
    print(f"audited {len(findings)} recording(s): {len(findings) - bad} intact, {bad} with problems, "
          f"{len(leftovers)} unfinished upload(s)", file=sys.stderr)
    return 1 if bad else 0
