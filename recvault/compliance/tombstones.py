"""Tombstones: the proof a recording was erased or purged, which counts only when its chain vouches for it.

An erasure deletes every version of a recording and leaves `tombstones/RE….json` (what was
deleted, hashes, no personal data). Anyone with PutObject can write such a key, so a
tombstone alone proves nothing: it counts when the recording's own audit chain holds an
`erased` or `purged` entry naming the tombstone's key and the SHA-256 of its bytes, and only
its original (oldest) version is what was written. `audit verify` counts a recording as
erased only then, and reports every other tombstone as forged.

A tombstone also keeps an erased recording erased: the archive task, reconcile and a dead
letter's replay ask `is_erased` first and refuse (with an `archive-refused-erased` entry)
rather than archive its copy at Twilio again.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from typing import Any

from recvault import layout, sids
from recvault.audit.append import read_chain_originals
from recvault.audit.chain import Entry, sha256_hex
from recvault.audit.findings import Finding
from recvault.audit.originals import KeyVersions, original_bytes, versions_by_key
from recvault.audit.write import write_audit
from recvault.errors import AlreadyExists
from recvault.storage.base import ObjectStore, Retention

log = logging.getLogger("recvault.compliance")

# The actions whose entry writes (and vouches for) a recording's tombstone.
TOMBSTONE_WRITES = ("erased", "purged")
# The entry a refusal to archive an erased recording again leaves in its chain.
REFUSED_ERASED = "archive-refused-erased"
# Tombstones judged at once by `tombstone_findings`: each costs a chain read (S3 round trips).
READERS = 8


def vouches(entries: Sequence[Entry], key: str, tombstone_sha256: str) -> bool:
    """Whether an `erased` or `purged` entry among `entries` vouches for these tombstone bytes at `key`. Pure.

    Entries written before tombstones were hashed carry no `tombstone_sha256` field at all:
    such an entry vouches for the recording's tombstone by its key alone (its content cannot
    be checked). A newer entry that found a tombstone it did not write carries the field as
    None, and vouches for nothing.
    """
    for entry in entries:
        if entry.action not in TOMBSTONE_WRITES:
            continue
        if "tombstone_sha256" not in entry.details:
            if entry.details.get("tombstone", key) == key:
                return True
        elif entry.details.get("tombstone") == key and entry.details["tombstone_sha256"] == tombstone_sha256:
            return True
    return False


def write_tombstone(store: ObjectStore, prefix: str, recording_sid: str, action: str, tombstone: dict[str, Any],
                    details: dict[str, Any], when: datetime, *, actor: str,
                    retention: Retention | None = None) -> str | None:
    """Write the tombstone, then the `erased`/`purged` entry naming its key and SHA-256 (the two in one
    round trip: the entry's index row goes with the tombstone, and a failed tombstone leaves no entry).

    `retention`: the lock of the tombstone and its entry (the commands and beat pass COMPLIANCE for
    the longest retention the policy can decide, like the seals): deleting the tombstone would
    otherwise need no bypass, and with it gone an erased recording could be archived again.
    Returns the SHA-256 the entry vouches for. When a tombstone is already there (an earlier run
    wrote it), the entry vouches for it only if an earlier entry of the chain already did;
    otherwise it records what it found and vouches for nothing, so `audit verify` keeps
    reporting that tombstone. Returns None then.
    """
    key = layout.tombstone_key(prefix, recording_sid)
    body = layout.json_line(tombstone)
    digest = sha256_hex(body)
    try:
        write_audit(store, prefix, recording_sid, action, {**details, "tombstone": key, "tombstone_sha256": digest},
                    retention, when, actor=actor,
                    alongside=lambda: store.put_bytes(key, body, content_type="application/json",
                                                      retention=retention))
        return digest
    except AlreadyExists:
        pass
    found = original_bytes(store, key)
    found_sha256 = sha256_hex(found) if found is not None else None
    earlier = read_chain_originals(store, prefix, recording_sid).trusted
    vouched = found_sha256 if found_sha256 and vouches(earlier, key, found_sha256) else None
    write_audit(store, prefix, recording_sid, action,
                {**details, "tombstone": key, "tombstone_sha256": vouched, "tombstone_found_sha256": found_sha256},
                retention, when, actor=actor)
    return vouched


def is_erased(store: ObjectStore, prefix: str, recording_sid: str) -> str | None:
    """The recording's tombstone key when it has one, else None. One request (the archive's hot path).

    A listing of the key's versions rather than a HEAD: a delete marker laid over the tombstone
    hides it from a HEAD, not from this.
    """
    key = layout.tombstone_key(prefix, recording_sid)
    found = any(v.key == key and not v.is_delete_marker for v in store.list_versions(key))
    return key if found else None


def refuse_if_erased(store: ObjectStore, prefix: str, recording_sid: str, *, asked_by: str, now: datetime,
                     details: dict[str, Any] | None = None) -> str | None:
    """The tombstone key, once the refusal is in the recording's chain and the log, when the recording
    was erased; None when it may be archived. `asked_by`: what wanted it archived ("archive task",
    "reconcile", "dlq replay")."""
    key = is_erased(store, prefix, recording_sid)
    if key is None:
        return None
    write_audit(store, prefix, recording_sid, REFUSED_ERASED, {"tombstone": key, "asked_by": asked_by,
                                                               **(details or {})}, None, now)
    log.warning("erased recording not archived again", extra={"recording_sid": recording_sid, "tombstone": key,
                                                               "asked_by": asked_by})
    return key


def tombstone_findings(store: ObjectStore, prefix: str) -> tuple[set[str], list[Finding]]:
    """(RecordingSids with a genuine tombstone, a finding for every tombstone that is not one or was written over).

    Genuine: the tombstone's original version is vouched for by an `erased`/`purged` entry of
    that recording's chain (read at its entries' original versions). A genuine tombstone with a
    later version or delete marker over it stays genuine, and the later one is reported.
    """
    listed = versions_by_key(store, prefix + layout.TOMBSTONES)
    with ThreadPoolExecutor(READERS) as pool:
        judged = list(pool.map(lambda found: _judge(store, prefix, found), listed.values()))
    genuine = {sid for sid, _ in judged if sid is not None}
    return genuine, [finding for _, findings in judged for finding in findings]


def _judge(store: ObjectStore, prefix: str, found: KeyVersions) -> tuple[str | None, list[Finding]]:
    """(the RecordingSid if its tombstone is genuine, the findings) for one key under tombstones/."""
    key = found.key
    sid = layout.record_recording_sid(key)
    later = [{"version_id": v.version_id, "delete_marker": v.is_delete_marker} for v in found.later]
    if not sids.is_sid(sid, sids.RECORDING) or layout.tombstone_key(prefix, sid) != key:
        return None, [_forged(key, "an object under tombstones/ that is no recording's tombstone", {"key": key})]
    if found.original is None:
        return None, [_forged(sid, "delete markers at a tombstone's key, and no tombstone under them",
                              {"key": key, "later": later})]
    digest = sha256_hex(store.get_bytes(key, found.original.version_id))
    entries = read_chain_originals(store, prefix, sid).trusted
    findings = []
    genuine = vouches(entries, key, digest)
    if not genuine:
        named = [{"entry": e.key, "action": e.action, "tombstone_sha256": e.details.get("tombstone_sha256")}
                 for e in entries if e.action in TOMBSTONE_WRITES]
        findings.append(_forged(sid, "no `erased` or `purged` entry of the recording's chain names this "
                                     "tombstone and its SHA-256",
                                {"key": key, "version_id": found.original.version_id, "sha256": digest,
                                 "entries": named}))
    if later:
        findings.append(_forged(sid, "a later version or delete marker over the tombstone",
                                {"key": key, "version_id": found.original.version_id, "later": later}))
    return (sid if genuine else None), findings


def _forged(subject: str, problem: str, evidence: dict[str, Any]) -> Finding:
    return Finding("completeness", subject, problem, evidence, kind="forged-tombstone")
