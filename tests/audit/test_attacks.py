"""An insider with the worker's own S3 rights (and, where the attack needs it, the GOVERNANCE bypass)
attacks the archive; `recvault audit verify` exits 1 naming the recording.

Each test is one attack of the audit proof's threat model, on SeaweedFS with Object Lock: a
substituted recording (swap), a rewritten or hidden audit entry or seal (rewrite), a recording
removed while its callback is only in Redis (vanish), and a malformed ledger row (stalled
ledger). The compliance records' attacks (forged tombstone, resurrection, wrong victim, forged
hold release) are in test_attacks_compliance.py.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator

import pytest
import redis

from recvault import layout
from recvault.audit.current_document import UnvouchedDocument
from recvault.audit.ledger_flush import flush_accepted
from recvault.storage.base import Retention
from tests.fixtures.insider import LEDGER, TODAY, Attacked, attacked_archive
from tests.fixtures.sealing import seal_all


@pytest.fixture
def compliance_archive(insider_store, sim, sim_account, redis_url, tmp_path, monkeypatch) -> Iterator[Attacked]:
    yield from attacked_archive("COMPLIANCE", insider_store, sim, sim_account, redis_url, tmp_path, monkeypatch)


@pytest.fixture
def governance_archive(insider_store, sim, sim_account, redis_url, tmp_path, monkeypatch) -> Iterator[Attacked]:
    yield from attacked_archive("GOVERNANCE", insider_store, sim, sim_account, redis_url, tmp_path, monkeypatch)


@pytest.mark.system
def test_swap_new_media_and_a_document_naming_it_over_a_compliance_recording_is_caught(
        compliance_archive, capsys) -> None:
    attacked = compliance_archive
    recording = attacked.env.sim.create_recording(duration=2)
    result = attacked.env.archive(recording)
    assert attacked.verify(capsys)[0] == 0
    meta_key = result.key
    document = json.loads(attacked.env.store.get_bytes(meta_key))
    media_key = document["media_key"]
    head = attacked.client.head_object(Bucket=attacked.bucket, Key=media_key)
    fake = b"RIFF" + b"\1" * (document["media_size"] - 4)
    # A plain PutObject, with the same lock and tags: S3 makes it the current version, the original stays under it.
    put = attacked.client.put_object(
        Bucket=attacked.bucket, Key=media_key, Body=fake, ObjectLockMode="COMPLIANCE",
        ObjectLockRetainUntilDate=head["ObjectLockRetainUntilDate"],
        Tagging="&".join(f"{k}={v}" for k, v in (document.get("tags") or {}).items()))
    document.update(media_version_id=put["VersionId"], media_sha256=hashlib.sha256(fake).hexdigest(),
                    media_checksum_sha256=None)
    attacked.client.put_object(Bucket=attacked.bucket, Key=meta_key, Body=layout.json_line(document))

    status, printed = attacked.verify(capsys)
    assert status == 1
    assert f"DISCREPANCY [substituted-media] {recording.sid}" in printed
    assert f"DISCREPANCY [unvouched-document] {recording.sid}" in printed


@pytest.mark.system
@pytest.mark.parametrize("sealed", [False, True], ids=["before the seal", "after the seal"])
def test_rewrite_of_the_last_entry_before_and_after_the_seal_is_caught(governance_archive, capsys, sealed) -> None:
    attacked = governance_archive
    recording = attacked.env.sim.create_recording(duration=2)
    attacked.env.archive(recording)
    if sealed:
        seal_all(attacked.env.store)
    entry = layout.chain_key("", recording.sid, 1)
    original = attacked.env.store.get_bytes(entry)
    forged = original.replace(b'"archived"', b'"archived" ')
    attacked.client.put_object(Bucket=attacked.bucket, Key=entry, Body=forged)
    status, printed = attacked.verify(capsys)
    assert status == 1
    assert f"DISCREPANCY [rewritten-entry] {recording.sid}" in printed
    # The same over a delete marker: hidden, not removed.
    attacked.client.delete_object(Bucket=attacked.bucket, Key=entry)
    status, printed = attacked.verify(capsys)
    assert status == 1 and f"DISCREPANCY [rewritten-entry] {recording.sid}" in printed


@pytest.mark.system
def test_a_new_version_or_a_delete_marker_over_the_latest_seal_is_caught(governance_archive, capsys) -> None:
    attacked = governance_archive
    attacked.env.archive(attacked.env.sim.create_recording(duration=2))
    [*_, latest] = seal_all(attacked.env.store)
    body = attacked.env.store.get_bytes(latest.key)
    attacked.client.put_object(Bucket=attacked.bucket, Key=latest.key, Body=body.replace(b'"count"', b'"count" '))
    status, printed = attacked.verify(capsys)
    assert status == 1 and f"DISCREPANCY [replaced-seal] {latest.key}" in printed
    attacked.client.delete_object(Bucket=attacked.bucket, Key=latest.key)
    status, printed = attacked.verify(capsys)
    assert status == 1 and f"DISCREPANCY [replaced-seal] {latest.key}" in printed


@pytest.mark.system
def test_a_recording_removed_whole_is_caught_without_a_ledger_row(governance_archive, capsys) -> None:
    """Archived by reconcile, say: no accepted callback holds it to account, its chain does."""
    attacked = governance_archive
    recording = attacked.env.sim.create_recording(duration=2)
    attacked.env.archive(recording)
    assert sum(attacked.erase_every_version(prefix) for prefix in (
        f"{layout.MEDIA}date={TODAY}/", f"{layout.METADATA}date={TODAY}/")) >= 2
    status, printed = attacked.verify(capsys)
    assert status == 1 and f"DISCREPANCY [vanished-recording] {recording.sid}" in printed


@pytest.mark.system
def test_vanish_of_a_governance_recording_while_its_callback_is_only_in_redis_is_caught(
        governance_archive, capsys) -> None:
    attacked = governance_archive
    recording = attacked.env.sim.create_recording(duration=2)
    attacked.accept(recording.sid, recording.account_sid)
    attacked.env.archive(recording)
    assert attacked.verify(capsys)[0] == 0
    # Every version of everything of the recording, with the bypass: media, document, chain, index rows.
    removed = sum(attacked.erase_every_version(prefix) for prefix in (
        f"{layout.MEDIA}date={TODAY}/", f"{layout.METADATA}date={TODAY}/", layout.chain_prefix("", recording.sid),
        f"{layout.AUDIT_INDEX}date={TODAY}/{recording.sid}"))
    assert removed >= 4
    assert not list(attacked.env.store.list_versions(layout.chain_prefix("", recording.sid)))

    status, printed = attacked.verify(capsys)
    assert status == 1
    assert f"DISCREPANCY [vanished-recording] {recording.sid}" in printed
    assert "ledger tail: 1 row(s) read from Redis" in printed


@pytest.mark.system
def test_a_malformed_ledger_row_no_longer_hides_the_rows_after_it(governance_archive, capsys) -> None:
    attacked = governance_archive
    lost = attacked.env.sim.create_recording(duration=2)
    client = redis.Redis.from_url(attacked.redis_url)
    client.xadd(LEDGER, {"r": b"\xff not a row"})
    client.close()
    attacked.accept(lost.sid, lost.account_sid)  # accepted, never archived
    status, printed = attacked.verify(capsys)
    assert status == 1
    assert f"DISCREPANCY [vanished-recording] {lost.sid}" in printed
    # Flushed as beat does: the bad row is set aside, the good one reaches S3, and verify names both.
    client = redis.Redis.from_url(attacked.redis_url)
    assert flush_accepted(client, LEDGER, attacked.env.store, "", Retention()) == 1
    assert client.xlen(LEDGER) == 0
    client.close()
    status, printed = attacked.verify(capsys)
    assert status == 1
    assert f"DISCREPANCY [vanished-recording] {lost.sid}" in printed
    assert "DISCREPANCY [rejected-ledger-row]" in printed


@pytest.mark.system
def test_a_forged_document_is_not_laundered_by_the_price_refresh(governance_archive, capsys) -> None:
    """A version put over the document before the late price arrives: the refresh must not rewrite
    it and vouch for the result (it would then look like recvault's own)."""
    attacked = governance_archive
    recording = attacked.env.sim.create_recording(duration=2, price_delay=3600)
    result = attacked.env.archive(recording)
    assert result.price_pending
    document = json.loads(attacked.env.store.get_bytes(result.key))
    forged = {**document, "retain_until": "2026-01-01T00:00:00+00:00"}
    attacked.client.put_object(Bucket=attacked.bucket, Key=result.key, Body=layout.json_line(forged))
    recording.price_delay = 0
    with pytest.raises(UnvouchedDocument):
        attacked.env.refresh(recording, result)
    assert json.loads(attacked.env.store.get_bytes(result.key)) == forged  # nothing rewritten from it
    status, printed = attacked.verify(capsys)
    assert status == 1 and f"DISCREPANCY [unvouched-document] {recording.sid}" in printed


@pytest.mark.system
def test_a_ledger_object_that_is_no_ledger_stops_nothing_and_is_reported(governance_archive, capsys) -> None:
    attacked = governance_archive
    attacked.env.archive(attacked.env.sim.create_recording(duration=2))
    key = f"{layout.AUDIT_ACCEPTED}date={TODAY}/0-0.jsonl"
    attacked.client.put_object(Bucket=attacked.bucket, Key=key, Body=b"not json\n")
    status, printed = attacked.verify(capsys)
    assert status == 1 and f"DISCREPANCY [rejected-ledger-row] {key}" in printed
