"""`recvault audit`: prove every archived recording is present and unchanged."""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from dataclasses import dataclass

HELP = "check every archived recording against its metadata document (size, checksum)"


@dataclass
class Finding:
    """One archived recording's audit outcome."""

    recording_sid: str
    media_key: str
    problem: str | None


def audit_archive(store, prefix: str, *, date: str | None = None, deep: bool = False) -> list[Finding]:
    """Check each metadata document's media: present, same size, same S3 checksum, and
    with `deep` the same full SHA-256 recomputed from the stored bytes."""
    findings = []
    root = f"{prefix}metadata/" + (f"date={date}/" if date else "")
    for key in store.list_keys(root):
        document = json.loads(store.get_bytes(key))
        media_key = document.get("media_key", "")
        current = store.head(media_key)
        problem = None
        if current is None:
            problem = "media missing"
        elif current.size != document.get("media_size"):
            problem = f"size {current.size} != {document.get('media_size')}"
        elif current.checksum_sha256 != document.get("media_checksum_sha256"):
            problem = "S3 checksum differs from the document"
        elif deep:
            digest = hashlib.sha256()
            for chunk in store.iter_bytes(media_key):
                digest.update(chunk)
            if digest.hexdigest() != document.get("media_sha256"):
                problem = "SHA-256 of stored bytes differs from the document"
        findings.append(Finding(document.get("sid", key), media_key, problem))
    return findings


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--date", help="only this partition (YYYY-MM-DD)")
    parser.add_argument("--deep", action="store_true", help="re-read every object and recompute SHA-256")
    parser.add_argument("--json", action="store_true", help="one JSON line per recording")


def run(args: argparse.Namespace, settings) -> int:
    from storage.s3 import S3Store

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
