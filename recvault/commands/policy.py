"""`recvault policy check|explain`: validate a policy file; show which rule decides what, and why."""

from __future__ import annotations

import argparse
import json
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from recvault.settings import Settings

if TYPE_CHECKING:
    from recvault.compliance.policy import Decision, Policy

HELP = "check a retention policy file, or explain what it decides for a recording or callback"
# Callback parameters `explain` understands, and the Recording resource field each one is.
CALLBACK_FIELDS = {
    "AccountSid": "account_sid", "CallSid": "call_sid", "ConferenceSid": "conference_sid",
    "RecordingSid": "sid", "RecordingSource": "source", "RecordingChannels": "channels",
    "RecordingTrack": "track", "RecordingDuration": "duration", "RecordingStatus": "status",
    "ErrorCode": "error_code", "EncryptionDetails": "encryption_details", "RecordingStartTime": "start_time",
}


class Refused(Exception):
    """A bad argument: one line for stderr, exit 2."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    check = sub.add_parser("check", help="validate FILE and summarise its rules (exit 2 naming the rule on error)")
    check.add_argument("file", type=Path, metavar="FILE")
    check.set_defaults(needs_settings=False)
    explain = sub.add_parser(
        "explain", help="which rule matches archived recordings or a set of callback parameters and labels",
        description="Explain the policy's decision. K=V pairs with a Twilio callback parameter name "
                    "(RecordingSource=DialVerb, AccountSid=AC…, RecordingChannels=2, ConferenceSid=CF…) are "
                    "callback parameters; any other name is a label (tenant=acme).")
    explain.add_argument("pairs", nargs="*", metavar="K=V", help="callback parameters and labels")
    explain.add_argument("--recording", "-r", nargs="+", default=[], metavar="RE",
                         help="archived recordings: read their metadata documents from S3")
    explain.add_argument("--policy", type=Path, metavar="FILE", help="this policy file (default RECVAULT_POLICY_FILE)")
    explain.add_argument("--json", action="store_true", help="one JSON object per decision")


def run(args: argparse.Namespace, settings: Settings | None) -> int:
    from recvault.compliance.policy import Policy

    if args.action == "check":
        # PolicyError: the CLI prints it, naming the file, the rule and the field, and exits 2.
        policy = Policy.load(args.file)
        print(f"{args.file}: valid; version {policy.version}; {len(policy.rules)} rule(s) and the default")
        for line in summary(policy):
            print(line)
        return 0
    assert settings is not None
    policy = Policy.load(args.policy) if args.policy else Policy.from_settings(settings)
    source = policy_source(args.policy, settings)
    try:
        subjects = _subjects(args, settings)
    except Refused as error:
        print(f"recvault: policy explain: {error}", file=sys.stderr)
        return 2
    for title, recording, labels, when, recorded in subjects:
        decision = policy.decide(recording, labels=labels, now=when)
        if args.json:
            print(json.dumps({"subject": title, "labels": labels, **as_dict(decision), "recorded": recorded,
                              "policy_file": str(args.policy or settings.policy_file or "") or None},
                             sort_keys=True))
        else:
            print("\n".join([f"{title}:", *describe(decision, labels, settings, recorded, source), ""]))
    return 0


def policy_source(given: Path | None, settings: Settings) -> str:
    """Which policy file `explain` decides with, in words: the one given, RECVAULT_POLICY_FILE's, or none."""
    if given:
        return str(given)
    if settings.policy_file:
        return f"{settings.policy_file} (RECVAULT_POLICY_FILE)"
    return "no policy file loaded (RECVAULT_POLICY_FILE is not set): the built-in default applies"


def summary(policy: Policy) -> list[str]:
    """One line per rule, in the order they are tried: its conditions, then what it decides."""
    lines = []
    for position, rule in enumerate(policy.all_rules(), start=1):
        conditions = rule.model_dump(exclude_defaults=True, include=_MATCH_FIELDS) if rule.name != "default" else {}
        labels = conditions.pop("labels", {})
        when = ", ".join([*(f"{key}={_alternatives(value)}" for key, value in conditions.items()),
                          *(f"label {name}={_alternatives(value)}" for name, value in labels.items())])
        when = when or "everything else"
        label = f"{position}." if rule.name != "default" else "  "
        lines.append(f"  {label} {rule.name}: {when} -> {_outcome(policy, rule)}")
    return lines


def _alternatives(value: Any) -> str:
    return "|".join(str(one) for one in value) if isinstance(value, list) else str(value)


_MATCH_FIELDS = {"account_sid", "source", "channels", "track", "min_duration", "max_duration", "conference",
                 "status", "error_code", "encrypted", "labels"}


def _outcome(policy: Policy, rule: Any) -> str:
    mode, days = policy.effective_mode(rule), policy.effective_days(rule)
    parts = [f"{mode} {days} days" if mode and days else "no retention lock"]
    if policy.effective_legal_hold(rule):
        parts.append("legal hold")
    storage = rule.storage_class or policy.default.storage_class
    kms = rule.kms_key_id or policy.default.kms_key_id
    if storage:
        parts.append(storage)
    if kms:
        parts.append(f"KMS {kms}")
    parts.append("Twilio delete permitted" if policy.effective_delete(rule) else "Twilio copy kept")
    return ", ".join(parts)


def as_dict(decision: Decision) -> dict[str, Any]:
    retention = decision.retention
    return {"rule": decision.rule, "policy_version": decision.policy_version, "mode": retention.mode,
            "retain_until": retention.until.isoformat() if retention.until else None,
            "legal_hold": retention.legal_hold, "tags": decision.tags, "storage_class": decision.storage_class,
            "kms_key_id": decision.kms_key_id, "delete_from_twilio": decision.delete_from_twilio}


def describe(decision: Decision, labels: dict[str, str], settings: Settings,
             recorded: dict[str, Any] | None, source: str) -> list[str]:
    retention = decision.retention
    delete = "permitted" if decision.delete_from_twilio else "not permitted (Twilio's copy is kept)"
    if decision.delete_from_twilio:
        delete += f"; RECVAULT_DELETE_AFTER_ARCHIVE is {'on' if settings.delete_after_archive else 'off'}"
    lines = [
        f"  labels:             {_pairs(labels) or '(none)'}",
        f"  rule:               {decision.rule}",
        f"  policy file:        {source}",
        f"  policy version:     {decision.policy_version}",
        f"  mode:               {retention.mode or 'none (no retention lock)'}",
        f"  retain until:       {retention.until.strftime('%Y-%m-%d') if retention.until else '-'}",
        f"  legal hold:         {'yes' if retention.legal_hold else 'no'}",
        f"  tags:               {_pairs(decision.tags)}",
        f"  storage class:      {decision.storage_class or 'bucket default (STANDARD)'}",
        f"  KMS key:            {decision.kms_key_id or 'bucket default encryption'}",
        f"  delete from Twilio: {delete}",
    ]
    if recorded is not None:
        lines.append(f"  archived under:     rule {recorded.get('policy')}, policy version "
                     f"{recorded.get('policy_version') or 'unrecorded'}, {recorded.get('retention_mode') or 'no lock'}"
                     f" until {recorded.get('retain_until') or '-'}")
    return lines


def _pairs(values: dict[str, str]) -> str:
    return ", ".join(f"{key}={value}" for key, value in sorted(values.items()))


Subject = tuple[str, dict[str, Any], dict[str, str], datetime, dict[str, Any] | None]


def _subjects(args: argparse.Namespace, settings: Settings) -> list[Subject]:
    """(title, Recording fields, labels, when decided, what the archive recorded) to explain."""
    from recvault import labels as label_rules
    from recvault import sids

    subjects: list[Subject] = []
    if args.pairs or not args.recording:
        recording: dict[str, Any] = {}
        labels: dict[str, str] = {}
        for pair in args.pairs:
            name, equals, value = pair.partition("=")
            if not equals or not name:
                raise Refused(f"{pair!r} is not K=V")
            if name in CALLBACK_FIELDS:
                recording[CALLBACK_FIELDS[name]] = value
            else:
                labels[name] = value
        try:
            label_rules.validate(labels)
        except label_rules.InvalidLabels as error:
            raise Refused(str(error)) from None
        for name, field in (("RecordingChannels", "channels"), ("RecordingDuration", "duration"),
                            ("ErrorCode", "error_code")):
            if not str(recording.get(field, "0")).isdigit():
                raise Refused(f"{name}={recording[field]!r} is not a whole number")
        subjects.append(("callback " + (" ".join(args.pairs) or "(no parameters)"), recording, labels,
                         datetime.now(UTC), None))
    bad = [sid for sid in args.recording if not sids.is_sid(sid, sids.RECORDING)]
    if bad:
        raise Refused(f"{', '.join(bad)}: not a RecordingSid (RE + 32 hex digits)")
    if args.recording:
        subjects.extend(_archived(args.recording, settings))
    return subjects


def _archived(recording_sids: list[str], settings: Settings) -> list[Subject]:
    from recvault.ops.recordings import RecordingsReader
    from recvault.ops.view import ArchiveView
    from recvault.storage.s3 import S3Store

    view = ArchiveView(S3Store.from_settings(settings), settings.s3_prefix)
    try:
        reader = RecordingsReader(view)
        subjects: list[Subject] = []
        for sid in recording_sids:
            records = reader.records_without_audit(sid)
            document = records.document or (records.events[-1] if records.events else None)
            if document is None:
                raise Refused(f"{sid}: no metadata document in the archive")
            stamp = document.get("archived_at") or document.get("recorded_at")
            when = datetime.fromisoformat(stamp) if isinstance(stamp, str) else datetime.now(UTC)
            found = document.get("labels")
            labels = {str(k): str(v) for k, v in found.items()} if isinstance(found, dict) else {}
            subjects.append((f"recording {sid}", document, labels, when, document))
        return subjects
    finally:
        view.close()
