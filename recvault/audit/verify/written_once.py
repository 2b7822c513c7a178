"""Objects recvault writes once: one version each, never a later version or a delete marker.

Media, event documents, index rows, ledger objects, erasure requests and dead letters are
written create-only (`If-None-Match: *`), so each key holds exactly one version. S3 Object
Lock cannot stop a plain PUT from stacking another version on such a key, or a delete
marker from hiding it; nothing recvault writes does either, so every one found is reported
(`unvouched-version`), naming the recording its key belongs to. Audit chains and seals are
checked the same way by audit.verify.trail; tombstones and the holds registry by their own
modules in recvault.compliance, which know what vouches for them.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from recvault import layout, sids
from recvault.audit.findings import Finding
from recvault.audit.originals import versions_by_key
from recvault.storage.base import ObjectStore

# Folders partitioned by day, checked for the days verified; and folders checked whole.
DAILY = (layout.MEDIA, layout.EVENTS, layout.AUDIT_INDEX, layout.AUDIT_ACCEPTED)
WHOLE = (layout.ERASURES, layout.DEAD_LETTERS)
_SID = re.compile(sids.sid_pattern(sids.RECORDING))


def recording_named(key: str) -> str:
    """The RecordingSid a key names, else the key itself: what a finding is about."""
    found = _SID.search(key)
    return found[0] if found else key


def written_once_findings(store: ObjectStore, prefix: str, days: Iterable[str], *,
                          skip: frozenset[str] | set[str] = frozenset()) -> tuple[list[Finding], int]:
    """A finding per key that holds more than its one version (keys in `skip` are checked elsewhere),
    and how many versions were listed."""
    folders = [layout.partition_prefix(prefix, folder, day) for day in days for folder in DAILY]
    folders += [f"{prefix}{folder}" for folder in WHOLE]
    findings, listed = [], 0
    for folder in folders:
        for key, found in versions_by_key(store, folder).items():
            listed += len(found.versions)
            if key in skip or not found.later:
                continue
            findings.append(Finding(
                "object", recording_named(key), "a later version or delete marker over an object written once",
                {"key": key, "original_version_id": found.original.version_id if found.original else None,
                 "later": [{"version_id": v.version_id, "delete_marker": v.is_delete_marker} for v in found.later]},
                kind="unvouched-version"))
    return findings, listed
