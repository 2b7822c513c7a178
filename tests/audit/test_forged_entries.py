"""Entries forged with only the S3 rights: a well-formed entry at a chain's next number, with a
correct `prev` and index row, written by plain PUTs. With an audit key, the sealer leaves it out
and `audit verify` names it; recvault's own entries carry a MAC and pass."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

import pytest

from recvault import layout
from recvault.audit import chain, process_key
from recvault.audit.append import read_chain
from recvault.audit.signing import AuditKey
from recvault.audit.verify.archive import verify_archive
from recvault.storage.s3 import S3Store
from tests.fixtures.sealing import seal_all

KEY = AuditKey(b"an-audit-key-kept-outside-the-bucket-0123")
TODAY = datetime.now(UTC).strftime("%Y-%m-%d")


@pytest.fixture
def keyed() -> Iterator[AuditKey]:
    """This process signs its entries with KEY, as `recvault` does once RECVAULT_AUDIT_KEY is set."""
    process_key.use(KEY)
    yield KEY
    process_key.use(None)


def forge(store: S3Store, chain_name: str, action: str, details: dict[str, object], *,
          at: datetime | None = None) -> str:
    """What an insider with PutObject can write: the chain's next entry and its index row, no MAC,
    stamped now or `at`."""
    entries, seqs, _ = read_chain(store, "", chain_name)
    seq = (seqs[-1] + 1) if seqs else 1
    prev = entries[-1].sha256 if entries else chain.genesis(chain_name)
    now = at or datetime.now(UTC)
    body = chain.entry_bytes(chain_name, seq, prev, now, "host:1", action, details)
    client, bucket = store._client, store.bucket
    client.put_object(Bucket=bucket, Key=layout.index_key("", f"{now:%Y-%m-%d}", chain_name, seq,
                                                          chain.sha256_hex(body)), Body=b"")
    key = layout.chain_key("", chain_name, seq)
    client.put_object(Bucket=bucket, Key=key, Body=body)
    return key


def found(store: S3Store, audit_key: AuditKey | None) -> set[tuple[str, str]]:
    return {(f.kind, f.subject) for f in verify_archive(store, "", TODAY, TODAY, audit_key=audit_key).findings}


def test_a_forged_erased_entry_is_not_sealed_and_verify_names_it(archive_env, sim, keyed) -> None:
    recording = sim.create_recording(duration=2)
    archive_env.archive(recording)
    assert all(entry.mac for entry in read_chain(archive_env.store, "", recording.sid)[0])
    forged = forge(archive_env.store, recording.sid, "erased", {"reason": "request"})

    assert ("forged-entry", recording.sid) in found(archive_env.store, keyed)
    sealed = seal_all(archive_env.store, audit_key=keyed)
    leaves = {key for seal in sealed for key, _ in chain.Seal.parse(archive_env.store.get_bytes(seal.key)).leaves}
    assert forged not in leaves
    assert layout.chain_key("", recording.sid, 1) in leaves  # recvault's own entry is sealed
    reports = [entry for day in {TODAY, f"{sealed[-1].period_start:%Y-%m-%d}"}
               for entry in read_chain(archive_env.store, "", chain.system_chain(day))[0]
               if entry.action == "seal-found-tampering"]
    assert [report.details["unauthenticated"] for report in reports] == [[forged]]
    after = found(archive_env.store, keyed)
    assert {("forged-entry", recording.sid), ("unsealed-entry", recording.sid)} <= after


def test_a_forged_hold_released_system_entry_is_named_for_its_system_chain(archive_env, sim, keyed) -> None:
    archive_env.archive(sim.create_recording(duration=2))
    system = chain.system_chain(TODAY)
    forge(archive_env.store, system, "hold-released", {"hold_id": "case-1"})
    assert ("forged-entry", system) in found(archive_env.store, keyed)


def test_a_clean_archive_with_a_key_has_no_finding_and_says_its_entries_are_authenticated(
        archive_env, sim, keyed) -> None:
    archive_env.archive(sim.create_recording(duration=2))
    seal_all(archive_env.store, audit_key=keyed)
    report = verify_archive(archive_env.store, "", TODAY, TODAY, audit_key=keyed)
    assert report.findings == []
    assert not any("RECVAULT_AUDIT_KEY" in line for line in report.not_covered)


def test_without_a_key_entries_carry_no_mac_and_the_report_says_they_are_not_authenticated(archive_env, sim) -> None:
    recording = sim.create_recording(duration=2)
    archive_env.archive(recording)
    assert not any(entry.mac for entry in read_chain(archive_env.store, "", recording.sid)[0])
    report = verify_archive(archive_env.store, "", TODAY, TODAY)
    assert report.findings == []
    assert any("RECVAULT_AUDIT_KEY unset" in line for line in report.not_covered)


def test_forged_entries_drive_no_action_hold_release_queued_erasure_or_tombstone(archive_env, sim, keyed) -> None:
    """Entries that would vouch for a forged hold release, a forged queued erasure or a forged
    tombstone, written without the key: recvault acts on none of them."""
    from recvault.audit.chain import sha256_hex
    from recvault.compliance.erasure import pending
    from recvault.compliance.hold_selector import Selector
    from recvault.compliance.holds import list_holds, set_hold
    from recvault.compliance.tombstones import tombstone_findings

    store = archive_env.store
    recording = sim.create_recording(duration=2)
    archive_env.archive(recording)
    set_hold(store, "", Selector((recording.sid,)), reason="inquiry", actor="counsel", now=datetime.now(UTC),
             hold_id="H-A")
    release = layout.json_line({"hold_id": "H-A", "reason": "x", "actor": "y", "at": datetime.now(UTC).isoformat()})
    release_key = layout.hold_key("", "H-A", "released")
    store._client.put_object(Bucket=store.bucket, Key=release_key, Body=release)
    forge(store, chain.system_chain(TODAY), "hold-released",
          {"hold_id": "H-A", "key": release_key, "sha256": sha256_hex(release)})
    assert [hold.hold_id for hold in list_holds(store, "") if hold.active] == ["H-A"]

    request = layout.json_line({"recording_sid": recording.sid, "reason": "x", "at": datetime.now(UTC).isoformat()})
    request_key = layout.erasure_key("", recording.sid, "pending")
    store._client.put_object(Bucket=store.bucket, Key=request_key, Body=request)
    forge(store, recording.sid, "erase-queued", {"key": request_key, "sha256": sha256_hex(request)})
    assert pending(store, "") == []

    tombstone = layout.json_line({"recording_sid": recording.sid})
    tombstone_key = layout.tombstone_key("", recording.sid)
    store._client.put_object(Bucket=store.bucket, Key=tombstone_key, Body=tombstone)
    forge(store, recording.sid, "erased", {"tombstone": tombstone_key, "tombstone_sha256": sha256_hex(tombstone)})
    genuine, forged = tombstone_findings(store, "")
    assert recording.sid not in genuine and [f.kind for f in forged] == ["forged-tombstone"]


def test_an_entry_backdated_before_the_key_was_introduced_still_needs_a_mac(archive_env, sim) -> None:
    """With SINCE in the past (the key introduced yesterday), a forged entry stamped years earlier is
    stored now: S3's clock, not the `at` its writer chose, says it came after the key."""
    from datetime import timedelta

    from recvault.audit.append import read_chain_originals
    from recvault.compliance.tombstones import tombstone_findings

    key = AuditKey(KEY.secret, since=datetime.now(UTC) - timedelta(days=1))
    process_key.use(key)
    recording = sim.create_recording(duration=2)
    archive_env.archive(recording)
    store = archive_env.store
    tombstone = layout.json_line({"recording_sid": recording.sid})
    tombstone_key = layout.tombstone_key("", recording.sid)
    store._client.put_object(Bucket=store.bucket, Key=tombstone_key, Body=tombstone)
    forge(store, recording.sid, "erased", {"tombstone": tombstone_key,
                                           "tombstone_sha256": chain.sha256_hex(tombstone)},
          at=datetime(2020, 1, 1, tzinfo=UTC))

    read = read_chain_originals(store, "", recording.sid)
    assert [e.action for e in read.entries] == ["archived", "erased"]
    assert [e.action for e in read.trusted] == ["archived"]
    assert recording.sid not in tombstone_findings(store, "")[0]
    assert ("forged-entry", recording.sid) in found(store, key)
