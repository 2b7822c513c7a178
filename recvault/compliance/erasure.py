"""Erasure: delete every version of a recording once no lock protects it, and leave a tombstone.

A data-subject request (GDPR Art. 17) must yield to a legal obligation to keep the record
(Art. 17(3)(b)): while Object Lock retention or a legal hold protects any version, the
request is recorded and refused with the date it becomes possible, or queued to run then.
Nothing here bypasses a lock; the store refuses a locked delete as well.

What it deletes is derived from the layout, never from the document alone, and a document
that names another recording's media, or is not the version its chain last recorded, is
refused before anything is deleted (`recording_objects.mismatch`). The tombstone counts as
proof of the erasure only through the `erased` entry that names its SHA-256 (`tombstones`).
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from recvault import layout
from recvault.audit.append import read_chain_originals
from recvault.audit.chain import sha256_hex
from recvault.audit.findings import Finding
from recvault.audit.originals import versions_by_key
from recvault.audit.write import stamped, write_audit
from recvault.compliance.holds import holds_covering, list_holds
from recvault.compliance.recording_objects import Located, audit_retention, locate, mismatch, versions
from recvault.compliance.tombstones import write_tombstone
from recvault.errors import AlreadyExists
from recvault.storage.base import ObjectStore, ObjectVersion, Retention

log = logging.getLogger("recvault.compliance")
# What a refusal says of a hold, which has no end date.
WHEN_RELEASED = "when released"


@dataclass(frozen=True)
class Refusal:
    """Why a recording may not be deleted yet, and when it may (a date, or WHEN_RELEASED)."""

    reasons: list[str]
    possible_from: str


@dataclass
class Outcome:
    """What an erasure or purge did for one recording."""

    recording_sid: str
    status: str  # "erased", "purged", "refused", "queued", "not-found", "mismatch" (see `problem`)
    refusal: Refusal | None = None
    tombstone: dict[str, Any] | None = None
    objects: int = 0
    # Why nothing was deleted when the document does not match the recording (status "mismatch").
    problem: str | None = None


def blockers(locks: list[Retention | None], holds: list[str], now: datetime) -> Refusal | None:
    """Why versions with these locks may not be deleted now, or None when nothing protects them. Pure."""
    reasons: list[str] = []
    until: datetime | None = None
    held = False
    for lock in locks:
        if lock is None:
            continue
        if lock.mode and lock.until and lock.until > now:
            until = max(until, lock.until) if until else lock.until
        if lock.legal_hold:
            held = True
    if until is not None:
        reasons.append(f"retention: locked until {until.isoformat()} (Object Lock)")
    if holds:
        reasons.append(f"legal hold: {', '.join(holds)}")
    elif held:
        reasons.append("legal hold set on the stored objects (policy or S3)")
    if not reasons:
        return None
    if held or holds:
        return Refusal(reasons, WHEN_RELEASED + (f", and not before {until.isoformat()}" if until else ""))
    assert until is not None  # a reason without a hold is a retention
    return Refusal(reasons, until.isoformat())


def check(store: ObjectStore, located: Located, active_holds: list[str], now: datetime
          ) -> tuple[list[ObjectVersion], Refusal | None]:
    """Every version of the recording and why they may not go yet (None: they may)."""
    found = versions(store, located.keys)
    locks = [store.lock_of(v.key, v.version_id) for v in found if not v.is_delete_marker]
    return found, blockers(locks, active_holds, now)


def delete_all(store: ObjectStore, prefix: str, located: Located, found: list[ObjectVersion], *, action: str,
               requested_by: str, reason: str, now: datetime, actor: str, details: dict[str, Any],
               record_retention: Retention | None = None) -> dict[str, Any]:
    """Delete every version (hashing each first), then write the tombstone and the `action` entry
    (`erased`, `purged`: `details` and the tombstone's key and SHA-256) that vouches for it; returns the tombstone."""
    objects = []
    for version in found:
        entry: dict[str, Any] = {"key": version.key, "version_id": version.version_id}
        if version.is_delete_marker:
            entry["delete_marker"] = True
        else:
            entry["size"], entry["sha256"] = _sha256(store, located, version)
        objects.append(entry)
    for version in found:
        store.delete_version(version.key, version.version_id)
    document = located.document or {}
    tombstone = {"recording_sid": located.sid, "date": located.date, "action": action, "at": now.isoformat(),
                 "requested_by": requested_by, "reason": reason, "policy_rule": document.get("policy"),
                 "media_sha256": document.get("media_sha256"), "objects": objects}
    write_tombstone(store, prefix, located.sid, action, tombstone, details, stamped(now), actor=actor,
                    retention=record_retention)
    return tombstone


def erase(store: ObjectStore, prefix: str, recording_sid: str, *, reason: str, requested_by: str, actor: str,
          now: datetime, when_allowed: bool = False, date: str | None = None,
          record_retention: Retention | None = None) -> Outcome:
    """Erase one recording now if nothing protects it; otherwise record the refusal (and queue it).

    `date` (the recording's day) saves searching every partition for it; `record_retention`: the lock
    of the tombstone and its `erased` entry (see compliance.tombstones.write_tombstone).
    """
    located = locate(store, prefix, recording_sid, date=date)
    if located is None:
        return Outcome(recording_sid, "not-found")
    request = {"reason": reason, "requested_by": requested_by, "when_allowed": when_allowed}
    retention = audit_retention(located.document, now)
    write_audit(store, prefix, recording_sid, "erase-requested", request, retention, stamped(now), actor=actor)
    problem = mismatch(store, prefix, located)
    if problem is not None:
        # Not queued either: no lock ending makes this document the recording's.
        write_audit(store, prefix, recording_sid, "erase-refused", {**request, "refused_because": [problem]},
                    retention, stamped(now), actor=actor)
        return Outcome(recording_sid, "mismatch", problem=problem)
    found, refusal = check(store, located, holds_covering(list_holds(store, prefix), recording_sid), now)
    if refusal is not None:
        details = {**request, "refused_because": refusal.reasons, "possible_from": refusal.possible_from}
        write_audit(store, prefix, recording_sid, "erase-refused", details, retention, stamped(now), actor=actor)
        if when_allowed:
            _queue(store, prefix, recording_sid, {**request, "actor": actor, "at": now.isoformat()}, retention, now,
                   actor)
            return Outcome(recording_sid, "queued", refusal)
        return Outcome(recording_sid, "refused", refusal)
    tombstone = delete_all(store, prefix, located, found, action="erased", requested_by=requested_by,
                           reason=reason, now=now, actor=actor, details={**request, "objects": len(found)},
                           record_retention=record_retention)
    _mark_done(store, prefix, recording_sid, now)
    return Outcome(recording_sid, "erased", tombstone=tombstone, objects=len(found))


def pending(store: ObjectStore, prefix: str) -> list[dict[str, Any]]:
    """Erasure requests queued with --when-allowed and not done yet, oldest first.

    Only requests `erase` queued count: read at their original version, naming the recording their
    key names, and vouched for by that recording's `erase-queued` entry (key and SHA-256). Anyone
    allowed PutObject could put a request under erasures/pending/; the hourly run must not erase
    what such a request names (see `request_findings`, which reports them).
    """
    done = {key.rsplit("/", 1)[-1] for key in store.list_keys(f"{prefix}{layout.ERASURES}done/")}
    waiting = []
    for key, found in versions_by_key(store, f"{prefix}{layout.ERASURES}pending/").items():
        if key.rsplit("/", 1)[-1] in done or found.original is None:
            continue
        request, problem = _judge_request(store, prefix, key, store.get_bytes(key, found.original.version_id))
        if problem is None:
            waiting.append(request)
        else:
            log.warning("queued erasure request ignored", extra={"key": key, "problem": problem})
    return sorted(waiting, key=lambda r: str(r.get("at")))


def request_findings(store: ObjectStore, prefix: str) -> list[Finding]:
    """A `forged-erasure-request` finding for every queued request `erase` did not queue."""
    findings = []
    for key, found in versions_by_key(store, f"{prefix}{layout.ERASURES}pending/").items():
        if found.original is None:
            continue
        _, problem = _judge_request(store, prefix, key, store.get_bytes(key, found.original.version_id))
        if problem is not None:
            findings.append(Finding("registry", layout.record_recording_sid(key), problem, {"key": key},
                                    kind="forged-erasure-request"))
    return findings


def _judge_request(store: ObjectStore, prefix: str, key: str, body: bytes) -> tuple[dict[str, Any], str | None]:
    """The request at `key` and why it does not count (None: it does)."""
    sid = layout.record_recording_sid(key)
    try:
        request = json.loads(body)
    except ValueError:
        return {}, f"{key} is not JSON"
    if not isinstance(request, dict) or request.get("recording_sid") != sid:
        return {}, f"{key} names recording {request.get('recording_sid') if isinstance(request, dict) else None!r}"
    digest = sha256_hex(body)
    entries = read_chain_originals(store, prefix, sid).trusted
    if not any(e.action == "erase-queued" and e.details.get("key") == key and e.details.get("sha256") == digest
               for e in entries):
        return request, f"no `erase-queued` entry of {sid} names {key} and its SHA-256"
    return request, None


def run_due(store: ObjectStore, prefix: str, now: datetime, *,
            record_retention: Retention | None = None) -> list[Outcome]:
    """Run every queued erasure whose locks have ended; the others stay queued, their refusal already recorded.

    A request whose document no longer matches its recording stays queued too, reported as "mismatch"
    each pass (and recorded in the chain when the erasure is asked for by hand), never run.
    """
    outcomes = []
    holds = list_holds(store, prefix)
    for request in pending(store, prefix):
        sid = str(request["recording_sid"])
        located = locate(store, prefix, sid)
        problem = mismatch(store, prefix, located) if located else None
        if problem is not None:
            outcomes.append(Outcome(sid, "mismatch", problem=problem))
            continue
        refusal = check(store, located, holds_covering(holds, sid), now)[1] if located else None
        if refusal is not None:
            outcomes.append(Outcome(sid, "queued", refusal))
            continue
        outcome = erase(store, prefix, sid, reason=str(request.get("reason")),
                        requested_by=str(request.get("requested_by")), actor="recvault scheduled erasure", now=now,
                        record_retention=record_retention)
        if outcome.status == "not-found":
            _mark_done(store, prefix, sid, now)
        outcomes.append(outcome)
    return outcomes


def _queue(store: ObjectStore, prefix: str, recording_sid: str, request: dict[str, Any],
           retention: Retention | None, now: datetime, actor: str) -> None:
    """Queue the request create-only, and the `erase-queued` entry that vouches for it (its key and hash)."""
    key = layout.erasure_key(prefix, recording_sid, "pending")
    body = layout.json_line({"recording_sid": recording_sid, **request})
    try:
        write_audit(store, prefix, recording_sid, "erase-queued", {"key": key, "sha256": sha256_hex(body)},
                    retention, stamped(now), actor=actor,
                    alongside=lambda: store.put_bytes(key, body, content_type="application/json"))
    except AlreadyExists:
        pass  # already queued: the first request runs, and this one is in the audit trail


def _mark_done(store: ObjectStore, prefix: str, recording_sid: str, now: datetime) -> None:
    if store.head(layout.erasure_key(prefix, recording_sid, "pending")) is None:
        return
    try:
        store.put_bytes(layout.erasure_key(prefix, recording_sid, "done"),
                        layout.json_line({"recording_sid": recording_sid, "at": now.isoformat()}),
                        content_type="application/json")
    except AlreadyExists:
        pass


def _sha256(store: ObjectStore, located: Located, version: ObjectVersion) -> tuple[int, str]:
    """(size, SHA-256 hex) of one stored version: the media's as archived (and verified then), else streamed."""
    document = located.document or {}
    if (version.key, version.version_id) == (document.get("media_key"), document.get("media_version_id")):
        return int(document.get("media_size") or version.size), str(document.get("media_sha256"))
    digest, size = hashlib.sha256(), 0
    for chunk in store.iter_version(version.key, version.version_id):
        digest.update(chunk)
        size += len(chunk)
    return size, digest.hexdigest()
