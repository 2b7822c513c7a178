"""One archived recording against what its audit chain recorded, not against its own current document.

The chain is read at its original versions (audit.append.read_chain_originals). Its
`archived` entry names the media key, the media version, its size and SHA-256, and the
SHA-256 of the document written with it; later document writes (a late price, the Twilio
delete) are entries naming their own document hash. So:

* every version of the metadata document must be one an entry vouches for, and the current
  one the latest of them (else `unvouched-document`): a document rewritten to name other
  media, another retention or another hash is caught, whatever it says;
* the media must be present in the version the `archived` entry recorded, that version the
  current one (else `substituted-media`), with no other version beside it, and with the
  recorded size, S3 checksum and (re-hashed) SHA-256;
* the lock, legal hold and tags are those the vouched document decided.

Chains written before entries named versions and hashes have no document hashes: their
recordings are checked against their current document, as before.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from recvault import layout
from recvault.audit import chain
from recvault.audit.chain import Entry
from recvault.audit.findings import Finding
from recvault.audit.integrity import media_problems
from recvault.audit.originals import KeyVersions
from recvault.audit.vouched import archived_entry, document_hashes
from recvault.compliance.purge import expires_at
from recvault.days import as_utc
from recvault.storage.base import ObjectStore, ObjectVersion


@dataclass(frozen=True)
class Recording:
    """What verify knows of one recording before checking it."""

    sid: str
    day: str
    document: KeyVersions
    media: dict[str, KeyVersions]  # the media partition of its day, by key
    entries: list[Entry]


@dataclass
class Checked:
    """What checking one recording found."""

    findings: list[Finding]
    rehashed: bool = False
    expired_media: str | None = None  # retention over, no hold: gone by lifecycle expiry, not tampering
    versions: int = 0


def check_recording(store: ObjectStore, recording: Recording, *, rehash: bool, held: bool,
                    now: datetime) -> Checked:
    checked = Checked([])
    document = _vouched_document(store, recording, checked)
    if document is None:
        return checked
    archived = archived_entry(recording.entries)
    if archived is None:
        checked.findings.append(Finding("chain", recording.sid, "archived, but its audit chain has no `archived` "
                                        "entry", {"document": recording.document.key}, kind="unrecorded"))
    expected = _expected_media(document, archived)
    key = str(expected.get("media_key") or "")
    found = recording.media.get(key)
    checked.versions += len(found.versions) if found else 0
    target = _archived_version(found, expected.get("media_version_id"))
    evidence: dict[str, Any] = {"document": recording.document.key, "media_key": key,
                                "archived_version_id": expected.get("media_version_id")}
    if target is None:
        ended = expires_at(document, None)
        if ended is not None and ended <= now and not held and not document.get("legal_hold"):
            checked.expired_media = key
        else:
            checked.findings.append(Finding("object", recording.sid, "the archived media version is gone",
                                            {**evidence, "versions_found": _listed(found)}, kind="missing-media"))
        return checked
    assert found is not None
    others = [v for v in found.versions if v.version_id != target.version_id]
    if found.versions[-1].version_id != target.version_id:
        checked.findings.append(Finding("object", recording.sid, "the current media is not the version archived: "
                                        "another was put over it", {**evidence, "versions_found": _listed(found)},
                                        kind="substituted-media"))
    elif others:
        checked.findings.append(Finding("object", recording.sid, "another media version sits beside the archived "
                                        "one", {**evidence, "versions_found": _listed(found)},
                                        kind="unvouched-version"))
    stored = store.head(key, version_id=target.version_id)
    if stored is None:  # listed a moment ago; removed since
        checked.findings.append(Finding("object", recording.sid, "the archived media version is gone", evidence,
                                        kind="missing-media"))
        return checked
    checked.rehashed = rehash
    for problem in media_problems(store, expected, stored, rehash=rehash):
        checked.findings.append(Finding("object", recording.sid, problem.what, {**evidence, **problem.evidence},
                                        kind=problem.kind))
    _check_lock(store, recording.sid, key, target, document, stored.retention, checked, held=held,
                current=found.versions[-1].version_id == target.version_id)
    return checked


def _vouched_document(store: ObjectStore, recording: Recording, checked: Checked) -> dict[str, Any] | None:
    """The document version the chain vouches for last (or, for an older chain, the current one)."""
    key = recording.document.key
    hashes = document_hashes(recording.entries)
    written = [v for v in recording.document.versions if not v.is_delete_marker]
    checked.versions += len(recording.document.versions)
    if not written:
        checked.findings.append(Finding("object", recording.sid, "the metadata document is hidden or gone",
                                        {"document": key, "versions_found": _listed(recording.document)},
                                        kind="unvouched-version"))
        return None
    bodies = {v.version_id: store.get_bytes(key, v.version_id) for v in written}
    if not hashes:
        return dict(json.loads(bodies[written[-1].version_id]))
    vouched: dict[str, Any] | None = None
    for version in written:
        digest = chain.sha256_hex(bodies[version.version_id])
        if digest not in hashes:
            checked.findings.append(Finding("object", recording.sid, "a metadata document version that no audit "
                                            "entry records", {"document": key, "version_id": version.version_id,
                                                              "sha256": digest, "recorded": hashes},
                                            kind="unvouched-document"))
        elif digest == hashes[-1]:
            vouched = dict(json.loads(bodies[version.version_id]))
    current = recording.document.versions[-1]
    if current.is_delete_marker:
        checked.findings.append(Finding("object", recording.sid, "the metadata document is hidden by a delete "
                                        "marker", {"document": key, "marker_version_id": current.version_id},
                                        kind="unvouched-version"))
    elif chain.sha256_hex(bodies[current.version_id]) != hashes[-1]:
        checked.findings.append(Finding("object", recording.sid, "the current metadata document is not the one "
                                        "recvault wrote last", {"document": key, "version_id": current.version_id,
                                                                "recorded_sha256": hashes[-1]},
                                        kind="unvouched-document"))
    if vouched is None:
        checked.findings.append(Finding("object", recording.sid, "the document version recvault wrote last is gone",
                                        {"document": key, "recorded_sha256": hashes[-1]},
                                        kind="unvouched-document"))
        return dict(json.loads(bodies[written[0].version_id]))
    return vouched


def _expected_media(document: dict[str, Any], archived: Entry | None) -> dict[str, Any]:
    """The media facts to hold the store to: the `archived` entry's, the document's S3 checksum."""
    facts = {"media_key": document.get("media_key"), "media_version_id": document.get("media_version_id"),
             "media_size": document.get("media_size"), "media_sha256": document.get("media_sha256"),
             "media_checksum_sha256": document.get("media_checksum_sha256")}
    if archived is not None and archived.details.get("media_version_id"):
        details = archived.details
        facts.update({"media_key": details.get("media_key"), "media_version_id": details.get("media_version_id"),
                      "media_size": details.get("size"), "media_sha256": details.get("sha256")})
    return facts


def _archived_version(found: KeyVersions | None, version_id: object) -> ObjectVersion | None:
    if found is None:
        return None
    written = [v for v in found.versions if not v.is_delete_marker]
    if not version_id:  # a document from before versions were recorded: its key's original
        return written[0] if written else None
    return next((v for v in written if v.version_id == version_id), None)


def _listed(found: KeyVersions | None) -> list[dict[str, Any]]:
    return [{"version_id": v.version_id, "delete_marker": v.is_delete_marker} for v in (found.versions if found
                                                                                           else ())]


def _check_lock(store: ObjectStore, sid: str, media_key: str, version: ObjectVersion, document: dict[str, Any],
                lock: Any, checked: Checked, *, held: bool, current: bool) -> None:
    mode, until, hold = layout.retention_fields(document)
    hold = hold or held  # the policy's hold, or one `recvault hold set` placed and has not released
    evidence: dict[str, Any] = {"media_key": media_key, "version_id": version.version_id, "decided_mode": mode,
                                "decided_until": until.isoformat() if until else None, "decided_legal_hold": hold,
                                "found_mode": getattr(lock, "mode", None),
                                "found_until": str(getattr(lock, "until", None)),
                                "found_legal_hold": bool(getattr(lock, "legal_hold", False))}
    found_until = getattr(lock, "until", None)
    if getattr(lock, "mode", None) != mode:
        checked.findings.append(Finding("retention", sid, "Object Lock mode differs from the policy's decision",
                                        evidence, kind="retention"))
    elif until is not None and (found_until is None or abs((as_utc(found_until) - as_utc(until)).total_seconds()) > 1):
        checked.findings.append(Finding("retention", sid, "retain-until differs from the policy's decision",
                                        evidence, kind="retention"))
    if bool(getattr(lock, "legal_hold", False)) != hold:
        checked.findings.append(Finding("retention", sid, "legal hold differs from the policy's decision and the "
                                        "hold registry", evidence, kind="retention"))
    if not current:
        return  # S3 reads the tags of the current version, which is already reported as not the archived one
    decided = document.get("tags") or {}
    found = store.get_tags(media_key)
    changed = {k: {"decided": v, "found": found.get(k)} for k, v in decided.items() if found.get(k) != v}
    if changed:
        checked.findings.append(Finding("tags", sid, "tags differ from the policy's decision",
                                        {"media_key": media_key, "tags": changed}, kind="tags"))
