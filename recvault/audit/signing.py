"""Authenticated audit entries: the one place an entry's MAC is computed and checked. No I/O.

Hash links and seals show that entries were not changed or removed once written; they cannot
show WHO wrote an entry. Anyone holding the worker's S3 rights can append a well-formed entry at
a chain's next number, with a correct `prev` and index row, and the sealer would seal it. A key
the S3 credentials do not give (RECVAULT_AUDIT_KEY) closes that: every entry recvault writes
carries `mac`, the hex HMAC-SHA256 under that key of the entry's bytes exactly as
chain.entry_bytes makes them without the `mac` field, and an entry without a valid one is not
recvault's.

Entries written before RECVAULT_AUDIT_KEY_SINCE (before the key was introduced, or under a key
since rotated out) are not checked: their seals vouch for them. "Written before" is judged by when
S3 stored the entry, not only by the `at` the writer chose: an entry stamped years ago and stored
after SINCE must carry a MAC like any other, so backdating does not get round the key.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from recvault.audit.chain import Entry
from recvault.days import as_utc

# How far S3's clock may run ahead of the writer's: an entry stored this soon after SINCE still
# counts as written before it.
CLOCK_SLACK = timedelta(minutes=5)


@dataclass(frozen=True)
class AuditKey:
    """The audit key, and the time from which every entry must carry a MAC under it (None: always)."""

    secret: bytes = field(repr=False)
    since: datetime | None = None

    def mac(self, unsigned: bytes) -> str:
        """The MAC of an entry's bytes made without a `mac` field."""
        return hmac.new(self.secret, unsigned, hashlib.sha256).hexdigest()

    def requires(self, at: str) -> bool:
        """Whether an entry stamped `at` must carry a valid MAC (one whose stamp does not parse must)."""
        if self.since is None:
            return True
        try:
            stamped = datetime.fromisoformat(at)
        except ValueError:
            return True
        return as_utc(stamped) >= self.since

    def stored_since(self, entry: Entry) -> bool:
        """Whether S3 stored the entry after SINCE (so it must carry a MAC whatever its `at`)."""
        if self.since is None or entry.stored_at is None:
            return self.since is None
        return as_utc(entry.stored_at) > self.since + CLOCK_SLACK

    def problem(self, entry: Entry) -> str | None:
        """Why `entry` is not authenticated by this key, or None when it is (or need not be)."""
        if not self.requires(entry.at) and not self.stored_since(entry):
            return None
        if not entry.mac:
            return f"{entry.key}: stamped {entry.at}, and carries no MAC: recvault did not write it"
        if not hmac.compare_digest(entry.mac.encode(), self.mac(entry.unsigned).encode()):
            return f"{entry.key}: stamped {entry.at}, and its MAC is not the audit key's: recvault did not write it"
        return None
