"""The MAC of an entry: over its exact bytes without the `mac` field, checked from RECVAULT_AUDIT_KEY_SINCE on."""

from __future__ import annotations

import hashlib
import hmac
from datetime import UTC, datetime, timedelta

from recvault.audit import chain
from recvault.audit.signing import AuditKey

KEY = AuditKey(b"k" * 16 + b"0123456789abcdef")
WHEN = datetime(2026, 11, 24, 10, 30, tzinfo=UTC)


def signed(key: AuditKey = KEY, at: datetime = WHEN, action: str = "archived") -> bytes:
    args = ("RE1", 1, chain.genesis("RE1"), at, "host:1", action, {"n": 1})
    return chain.entry_bytes(*args, mac=key.mac(chain.entry_bytes(*args)))


def test_the_mac_is_the_hmac_of_the_entry_bytes_made_without_it() -> None:
    args = ("RE1", 1, chain.genesis("RE1"), WHEN, "host:1", "archived", {"n": 1})
    unsigned = chain.entry_bytes(*args)
    entry = chain.Entry.parse("k", signed())
    assert entry.unsigned == unsigned
    assert entry.mac == hmac.new(KEY.secret, unsigned, hashlib.sha256).hexdigest()
    assert KEY.problem(entry) is None
    assert b'"mac"' not in unsigned  # without a key the format is as before


def test_a_changed_byte_a_missing_mac_or_another_key_fails() -> None:
    body = signed()
    tampered = chain.Entry.parse("k", body.replace(b'"n":1', b'"n":2'))
    assert "MAC is not the audit key's" in (KEY.problem(tampered) or "")
    unsigned = chain.Entry.parse("k", chain.entry_bytes("RE1", 1, chain.genesis("RE1"), WHEN, "host:1", "erased", {}))
    assert "carries no MAC" in (KEY.problem(unsigned) or "")
    other = AuditKey(b"o" * 32)
    assert other.problem(chain.Entry.parse("k", body)) is not None


def test_entries_stamped_before_since_need_no_mac() -> None:
    key = AuditKey(KEY.secret, since=WHEN)
    before = chain.Entry.parse("k", chain.entry_bytes("RE1", 1, chain.genesis("RE1"), WHEN - timedelta(seconds=1),
                                                      "host:1", "archived", {}))
    at = chain.Entry.parse("k", chain.entry_bytes("RE1", 1, chain.genesis("RE1"), WHEN, "host:1", "archived", {}))
    assert key.problem(before) is None
    assert key.problem(at) is not None


def test_the_key_never_shows_in_its_repr() -> None:
    assert "k" * 16 not in repr(KEY)
