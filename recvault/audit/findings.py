"""What `audit verify` reports: one finding per discrepancy, each of a named kind an auditor can look up.

Kinds say what was found in words; `check` says which part of the archive was being checked.
The checks live in `recvault.audit.verify` and, for their own records, in the compliance
package (tombstones, the holds registry), so this sits below both.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

# kind → what it means, as the auditor's report explains it.
KINDS: dict[str, str] = {
    "substituted-media": "the recording's current media is not the version its `archived` entry recorded",
    "altered-media": "the archived media's size, S3 checksum or SHA-256 differs from what was recorded",
    "missing-media": "the archived media is gone while its retention or a hold still protects it",
    "unvouched-document": "a metadata document version that no audit entry records",
    "unvouched-version": "a later version or a delete marker over an object that is written once",
    "rewritten-entry": "an audit entry was rewritten or hidden (a later version or delete marker over it)",
    "broken-chain": "an audit chain's numbering or hash links are broken",
    "forged-entry": (
        "an audit entry recvault did not write: it lacks a valid MAC under the audit key (RECVAULT_AUDIT_KEY)"),
    "unrecorded": "an archived recording whose audit chain has no `archived` entry",
    "unsealed-entry": "an entry of a sealed period that its seal does not hold",
    "altered-sealed-entry": "an entry or record a seal holds is gone or changed",
    "replaced-seal": "a seal was rewritten, hidden, left unlocked or does not add up",
    "missing-seal": "a period between two seals has no seal",
    "witness-mismatch": "the seals in the bucket differ from the copies the witness holds",
    "index-without-entry": "an index row of an open period names an entry that does not exist",
    "vanished-recording": "a completed callback was accepted, and nothing of it is archived or accounted for",
    "forged-tombstone": "a tombstone that no `erased` or `purged` entry vouches for",
    "forged-hold-record": "a holds registry record that no audit entry vouches for, or filed under another id",
    "forged-erasure-request": "a queued erasure request that no `erase-queued` entry of its recording vouches for",
    "rejected-ledger-row": "a malformed accepted-callback row, moved aside by the ledger flush",
    "retention": "the Object Lock mode, retain-until or legal hold differs from the policy's decision",
    "tags": "the S3 tags differ from the policy's decision",
}


@dataclass(frozen=True)
class Finding:
    """One discrepancy: its kind (a key of KINDS), what it concerns, and what shows it."""

    check: str  # which check found it: chain, seal, object, retention, completeness, registry, ledger
    subject: str  # a RecordingSid when one is concerned, else a chain, a period, a key
    problem: str
    evidence: dict[str, Any] = field(default_factory=dict)
    kind: str = ""

    def __post_init__(self) -> None:
        if self.kind and self.kind not in KINDS:
            raise ValueError(f"unknown finding kind {self.kind!r}")
