"""Tombstones count only when the recording's chain vouches for their bytes; an erased recording stays erased."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime

from recvault import layout
from recvault.audit.append import read_chain_originals
from recvault.audit.chain import Entry
from recvault.compliance.erasure import erase
from recvault.compliance.tombstones import REFUSED_ERASED, is_erased, refuse_if_erased, tombstone_findings, vouches
from tests.compliance.seed import audit_trail, seed

KEY = "tombstones/RE" + "a" * 32 + ".json"
SHA = "b" * 64


def entry(action: str, **details: object) -> Entry:
    return Entry(key="k", seq=1, prev="p", at="2026-11-24T00:00:00+00:00", actor="a", action=action,
                 details=dict(details), chain="RE" + "a" * 32, sha256="c" * 64)


def test_an_entry_vouches_for_a_tombstone_only_by_its_key_and_the_sha256_of_its_bytes() -> None:
    assert vouches([entry("erased", tombstone=KEY, tombstone_sha256=SHA)], KEY, SHA)
    assert vouches([entry("archived"), entry("purged", tombstone=KEY, tombstone_sha256=SHA)], KEY, SHA)
    assert not vouches([entry("erased", tombstone=KEY, tombstone_sha256=SHA)], KEY, "d" * 64)
    assert not vouches([entry("erased", tombstone="tombstones/other.json", tombstone_sha256=SHA)], KEY, SHA)
    assert not vouches([entry("erase-requested", tombstone=KEY, tombstone_sha256=SHA)], KEY, SHA)
    assert not vouches([], KEY, SHA)
    # An entry that found a tombstone it did not write says so with None: it vouches for nothing.
    assert not vouches([entry("erased", tombstone=KEY, tombstone_sha256=None)], KEY, SHA)


def test_an_entry_written_before_tombstones_were_hashed_vouches_by_the_key_alone() -> None:
    assert vouches([entry("erased", tombstone=KEY)], KEY, SHA)
    assert vouches([entry("purged", reason="retention ended")], KEY, SHA)  # older purges named no key
    assert not vouches([entry("erased", tombstone="tombstones/other.json")], KEY, SHA)


def test_an_erasure_leaves_a_tombstone_its_erased_entry_vouches_for(vault, prefix) -> None:
    seeded = seed(vault, prefix=prefix)
    key = layout.tombstone_key(prefix, seeded.sid)
    assert is_erased(vault, prefix, seeded.sid) is None

    assert erase(vault, prefix, seeded.sid, reason="DSAR 3", requested_by="subject", actor="dpo",
                 now=datetime.now(UTC)).status == "erased"

    (_, erased), = audit_trail(vault, prefix, seeded.sid, "erased")
    assert erased["tombstone"] == key
    assert erased["tombstone_sha256"] == hashlib.sha256(vault.get_bytes(key)).hexdigest()
    assert tombstone_findings(vault, prefix) == ({seeded.sid}, [])
    assert is_erased(vault, prefix, seeded.sid) == key
    # A delete marker hides the tombstone from a GET, not from is_erased, and is itself reported.
    vault._client.delete_object(Bucket=vault.bucket, Key=key)
    assert vault.head(key) is None and is_erased(vault, prefix, seeded.sid) == key
    genuine, findings = tombstone_findings(vault, prefix)
    assert genuine == {seeded.sid}
    assert [(f.kind, f.subject, f.problem) for f in findings] == [
        ("forged-tombstone", seeded.sid, "a later version or delete marker over the tombstone")]
    assert findings[0].evidence["later"][0]["delete_marker"] is True


def test_a_tombstone_no_entry_vouches_for_is_reported_and_the_recording_is_not_erased_by_it(vault, prefix) -> None:
    kept = seed(vault, prefix=prefix)
    forged = layout.tombstone_key(prefix, kept.sid)
    vault.put_bytes(forged, b"{}", content_type="application/json")
    vault.put_bytes(f"{prefix}{layout.TOMBSTONES}notes.txt", b"x", content_type="text/plain")

    genuine, findings = tombstone_findings(vault, prefix)

    assert genuine == set()
    found = {(f.kind, f.check, f.subject) for f in findings}
    assert found == {("forged-tombstone", "completeness", kept.sid),
                     ("forged-tombstone", "completeness", f"{prefix}{layout.TOMBSTONES}notes.txt")}
    [about] = [f for f in findings if f.subject == kept.sid]
    assert about.evidence["sha256"] == hashlib.sha256(b"{}").hexdigest() and about.evidence["entries"] == []


def test_an_erasure_over_a_tombstone_it_did_not_write_does_not_vouch_for_it(vault, prefix) -> None:
    seeded = seed(vault, prefix=prefix)
    key = layout.tombstone_key(prefix, seeded.sid)
    vault.put_bytes(key, b'{"planted":true}', content_type="application/json")

    assert erase(vault, prefix, seeded.sid, reason="DSAR 4", requested_by="subject", actor="dpo",
                 now=datetime.now(UTC)).status == "erased"

    (_, erased), = audit_trail(vault, prefix, seeded.sid, "erased")
    assert erased["tombstone_sha256"] is None
    assert erased["tombstone_found_sha256"] == hashlib.sha256(b'{"planted":true}').hexdigest()
    genuine, findings = tombstone_findings(vault, prefix)
    assert genuine == set() and [f.subject for f in findings] == [seeded.sid]


def test_a_refusal_to_archive_an_erased_recording_is_an_entry_naming_who_asked(vault, prefix) -> None:
    seeded = seed(vault, prefix=prefix)
    now = datetime.now(UTC)
    assert refuse_if_erased(vault, prefix, seeded.sid, asked_by="reconcile", now=now) is None
    erase(vault, prefix, seeded.sid, reason="r", requested_by="s", actor="a", now=now)

    key = refuse_if_erased(vault, prefix, seeded.sid, asked_by="dlq replay", now=now, details={"letter_id": "x"})

    assert key == layout.tombstone_key(prefix, seeded.sid)
    entries = read_chain_originals(vault, prefix, seeded.sid).entries
    assert (entries[-1].action, entries[-1].details) == (REFUSED_ERASED, {"tombstone": key, "asked_by": "dlq replay",
                                                                         "letter_id": "x"})
    assert json.loads(vault.get_bytes(key))["recording_sid"] == seeded.sid
