"""Erasure and the locks it yields to, on SeaweedFS with Object Lock: refused under retention or hold, done after."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from recvault import layout
from recvault.compliance.erasure import WHEN_RELEASED, blockers, erase, pending, run_due
from recvault.compliance.hold_selector import Selector
from recvault.compliance.holds import release_hold, set_hold
from recvault.compliance.policy import Policy
from recvault.errors import StorageRejected
from recvault.storage.base import Retention
from tests.compliance.seed import audit_trail, seed, soon


def raw_client(store):
    """A plain boto3 client on the same bucket: what anyone with S3 credentials could do."""
    return boto3.client("s3", endpoint_url=store.endpoint_url, region_name="us-east-1",
                        aws_access_key_id="insider", aws_secret_access_key="insider-secret",
                        config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 1}))


def versions_of(store, prefix, seeded) -> list:
    return [v for key in seeded.keys for v in store.list_versions(key) if v.key == key]


def audit_actions(store, prefix, recording_sid: str) -> list[str]:
    """The actions of a recording's audit records."""
    return sorted(record["action"] for _, record in audit_trail(store, prefix, recording_sid))


def test_a_compliance_locked_recording_cannot_be_deleted_or_shortened_by_recvault_or_by_s3(vault, prefix) -> None:
    until = datetime.now(UTC).replace(microsecond=0) + timedelta(days=3)
    seeded = seed(vault, prefix=prefix, lock=Retention("COMPLIANCE", until))
    before = versions_of(vault, prefix, seeded)

    outcome = erase(vault, prefix, seeded.sid, reason="GDPR request 42", requested_by="subject",
                    actor="dana", now=datetime.now(UTC))

    assert outcome.status == "refused" and outcome.refusal is not None
    assert outcome.refusal.possible_from == until.isoformat()
    assert any("retention" in reason for reason in outcome.refusal.reasons)
    assert versions_of(vault, prefix, seeded) == before
    assert {"erase-requested", "erase-refused"} <= set(audit_actions(vault, prefix, seeded.sid))
    # recvault's store refuses a locked delete by itself too, whatever the caller checked.
    with pytest.raises(StorageRejected):
        vault.delete_version(seeded.media_key, before[0].version_id)
    client = raw_client(vault)
    for version in before:
        with pytest.raises(ClientError, match="AccessDenied"):
            client.delete_object(Bucket=vault.bucket, Key=version.key, VersionId=version.version_id)
        with pytest.raises(ClientError, match="AccessDenied"):
            client.put_object_retention(Bucket=vault.bucket, Key=version.key, VersionId=version.version_id,
                                        Retention={"Mode": "COMPLIANCE", "RetainUntilDate": until - timedelta(days=2)})
    with pytest.raises(ClientError, match="AccessDenied"):
        client.delete_object(Bucket=vault.bucket, Key=seeded.media_key, VersionId=before[0].version_id,
                             BypassGovernanceRetention=True)
    assert vault.lock_of(seeded.media_key, before[0].version_id).until == until


def test_erase_is_refused_under_a_hold_and_works_once_released_leaving_a_tombstone_and_the_trail(vault, prefix) -> None:
    seeded = seed(vault, prefix=prefix)
    document = {**json.loads(vault.get_bytes(seeded.metadata_key)), "price": "-0.01"}
    vault.put_bytes(seeded.metadata_key, layout.json_line(document), content_type="application/json",
                       create_only=False)  # a second version of the document, as a price refresh writes
    hold, _ = set_hold(vault, prefix, Selector((seeded.sid,)), reason="litigation", actor="legal",
                       now=datetime.now(UTC))

    refused = erase(vault, prefix, seeded.sid, reason="request 7", requested_by="subject", actor="dana",
                    now=datetime.now(UTC))
    assert refused.status == "refused" and refused.refusal is not None
    assert refused.refusal.possible_from == WHEN_RELEASED
    assert refused.refusal.reasons == [f"legal hold: {hold.hold_id}"]

    release_hold(vault, prefix, hold.hold_id, reason="settled", actor="legal", now=datetime.now(UTC))
    erased = erase(vault, prefix, seeded.sid, reason="request 7", requested_by="subject", actor="dana",
                   now=datetime.now(UTC))

    assert erased.status == "erased" and erased.objects == 4
    assert versions_of(vault, prefix, seeded) == []
    tombstone = json.loads(vault.get_bytes(layout.tombstone_key(prefix, seeded.sid)))
    assert (tombstone["recording_sid"], tombstone["requested_by"], tombstone["reason"], tombstone["policy_rule"]) == (
        seeded.sid, "subject", "request 7", "default")
    assert sorted(o["key"] for o in tombstone["objects"]) == sorted([*seeded.keys, seeded.metadata_key])
    assert all(len(o["sha256"]) == 64 for o in tombstone["objects"])
    assert seeded.call_sid not in json.dumps(tombstone)  # nothing about the call itself
    actions = audit_actions(vault, prefix, seeded.sid)
    assert {"archived", "held", "released", "erase-requested", "erase-refused", "erased"} <= set(actions)


def test_erase_when_allowed_is_queued_and_run_by_the_scheduled_pass_once_the_hold_ends(vault, prefix) -> None:
    seeded = seed(vault, prefix=prefix)
    hold, _ = set_hold(vault, prefix, Selector((seeded.sid,)), reason="audit", actor="legal", now=datetime.now(UTC))

    queued = erase(vault, prefix, seeded.sid, reason="request 9", requested_by="subject", actor="dana",
                   now=datetime.now(UTC), when_allowed=True)
    assert queued.status == "queued"
    assert [r["recording_sid"] for r in pending(vault, prefix)] == [seeded.sid]
    assert [o.status for o in run_due(vault, prefix, datetime.now(UTC))] == ["queued"]
    assert versions_of(vault, prefix, seeded)

    release_hold(vault, prefix, hold.hold_id, reason="over", actor="legal", now=datetime.now(UTC))
    assert [o.status for o in run_due(vault, prefix, datetime.now(UTC))] == ["erased"]
    assert versions_of(vault, prefix, seeded) == [] and pending(vault, prefix) == []
    assert vault.head(layout.tombstone_key(prefix, seeded.sid)) is not None


@pytest.mark.system
@pytest.mark.parametrize("mode", ["GOVERNANCE", "COMPLIANCE"])
def test_erase_is_refused_while_retained_and_works_once_retention_ends(vault, prefix, mode) -> None:
    until = soon(3)
    seeded = seed(vault, prefix=prefix, lock=Retention(mode, until))
    refused = erase(vault, prefix, seeded.sid, reason="r", requested_by="s", actor="a", now=datetime.now(UTC))
    assert refused.status == "refused" and refused.refusal is not None
    assert refused.refusal.possible_from.startswith(until.isoformat()[:19])
    time.sleep(max(0.0, (until - datetime.now(UTC)).total_seconds()) + 1.2)
    erased = erase(vault, prefix, seeded.sid, reason="r", requested_by="s", actor="a", now=datetime.now(UTC))
    assert erased.status == "erased" and versions_of(vault, prefix, seeded) == []


def test_blockers_name_the_latest_retain_until_and_holds_and_nothing_once_both_end() -> None:
    now = datetime(2026, 12, 1, tzinfo=UTC)
    early, late = now + timedelta(days=1), now + timedelta(days=30)
    locks = [Retention("GOVERNANCE", early), Retention("COMPLIANCE", late), None]
    refusal = blockers(locks, [], now)
    assert refusal is not None and refusal.possible_from == late.isoformat()
    held = blockers([Retention("COMPLIANCE", late, legal_hold=True)], ["H1"], now)
    assert held is not None and held.possible_from == f"{WHEN_RELEASED}, and not before {late.isoformat()}"
    assert held.reasons[-1] == "legal hold: H1"
    policy_hold = blockers([Retention(legal_hold=True)], [], now)
    assert policy_hold is not None and policy_hold.possible_from == WHEN_RELEASED
    assert blockers([Retention("COMPLIANCE", now - timedelta(seconds=1)), None], [], now) is None


def test_an_archived_recording_is_erased_whole_and_its_remaining_trail_holds_no_call_details(archive_env, sim) -> None:
    archive_env.policy = Policy.from_dict({"default": {"retention_days": 30, "mode": "none"}})
    recording = sim.create_recording(duration=2)
    result = archive_env.archive(recording)
    archive_env.archive(recording, status="absent")  # an event document of the same recording too
    store, prefix = archive_env.store, ""

    outcome = erase(store, prefix, recording.sid, reason="DSAR 11", requested_by="subject", actor="dana",
                    now=datetime.now(UTC))

    assert outcome.status == "erased"
    assert result.media is not None and store.head(result.media.key) is None and store.head(result.key) is None
    assert not [key for key in store.list_keys("") if recording.sid in key and not key.startswith(
        (prefix + layout.AUDIT, prefix + layout.TOMBSTONES))]
    tombstone = json.loads(store.get_bytes(layout.tombstone_key(prefix, recording.sid)))
    assert tombstone["media_sha256"] == result.media.sha256_hex
    trail = [store.get_bytes(key).decode() for key in store.list_keys(prefix + layout.AUDIT) if recording.sid in key]
    assert len(trail) >= 3
    for text in [*trail, json.dumps(tombstone)]:
        assert "+1" not in text and "From" not in text and "To\"" not in text  # no phone numbers, no parties
