"""The policy's decision applied on real SeaweedFS: labels, rule, version, lock, storage class, delete permission."""

from __future__ import annotations

import json
from datetime import UTC, datetime

from recvault.compliance.policy import Policy
from recvault.events import RecordingStatusEvent
from recvault.settings import Settings
from recvault.storage.base import Retention
from recvault.storage.placement import Placement
from recvault.storage.s3_params import write_params
from recvault.workers.archive import ArchiveOptions, archive_event
from tests.compliance.seed import audit_trail

POLICY = {
    "default": {"retention_days": 1, "mode": "GOVERNANCE", "tags": {"classification": "call-recording"}},
    "rule": [
        {"name": "absent-short", "status": "absent", "labels": {"tenant": "acme-securities"}, "mode": "none"},
        {"name": "finance-7y", "labels": {"tenant": "acme-securities"}, "mode": "COMPLIANCE", "retention_days": 2,
         "storage_class": "STANDARD_IA", "delete_from_twilio": False, "tags": {"regime": "sec-17a-4"}},
    ],
}
LABELS = {"tenant": "acme-securities", "consent": "explicit"}


def _archive(env, recording, status: str = "completed", labels: dict[str, str] | None = None):
    event = RecordingStatusEvent.from_params(env.event(recording, status).params, labels)
    return archive_event(event, received_at=datetime.now(UTC), twilio=env.twilio, store=env.store,
                         policy=env.policy, options=env.options)


def _audit(store, action: str) -> list[dict]:
    return [record for _, record in audit_trail(store, "", action=action)]


def test_a_labelled_recording_is_archived_under_its_rule_with_labels_version_lock_and_storage_class(
        archive_env, sim) -> None:
    archive_env.policy = Policy.from_dict(POLICY)
    recording = sim.create_recording(duration=3)
    result = _archive(archive_env, recording, labels=LABELS)
    document = json.loads(archive_env.store.get_bytes(result.key))
    assert document["labels"] == LABELS
    assert (document["policy"], document["policy_version"]) == ("finance-7y", archive_env.policy.version)
    assert (document["retention_mode"], document["storage_class"]) == ("COMPLIANCE", "STANDARD_IA")
    assert document["delete_from_twilio"] is False and document["kms_key_id"] is None
    client, bucket = archive_env.store._client, archive_env.store.bucket
    for key in (document["media_key"], result.key):
        head = client.head_object(Bucket=bucket, Key=key)
        assert head["ObjectLockMode"] == "COMPLIANCE" and head["StorageClass"] == "STANDARD_IA"
        assert head["ObjectLockRetainUntilDate"].date().isoformat() == document["retain_until"][:10]
    tags = {t["Key"]: t["Value"] for t in client.get_object_tagging(Bucket=bucket, Key=document["media_key"])["TagSet"]}
    assert tags["recvault-policy"] == "finance-7y" and tags["regime"] == "sec-17a-4"
    [audit] = _audit(archive_env.store, "archived")
    assert (audit["labels"], audit["policy"], audit["policy_version"]) == (LABELS, "finance-7y",
                                                                           archive_env.policy.version)
    # The entry says how the recording was tagged and locked, as its chain of custody's first step.
    assert audit["tags"] == document["tags"] and audit["tags"]["recvault-policy"] == "finance-7y"
    assert (audit["retention_mode"], audit["retain_until"]) == ("COMPLIANCE", document["retain_until"])


def test_without_labels_the_default_decides_and_nothing_extra_is_asked_of_s3(archive_env, sim) -> None:
    archive_env.policy = Policy.from_dict(POLICY)
    result = _archive(archive_env, sim.create_recording(duration=2))
    document = json.loads(archive_env.store.get_bytes(result.key))
    assert (document["labels"], document["policy"], document["retention_mode"]) == ({}, "default", "GOVERNANCE")
    head = archive_env.store._client.head_object(Bucket=archive_env.store.bucket, Key=document["media_key"])
    assert head.get("StorageClass", "STANDARD") == "STANDARD"


def test_a_non_completed_event_document_keeps_labels_and_rule(archive_env, sim) -> None:
    archive_env.policy = Policy.from_dict(POLICY)
    result = _archive(archive_env, sim.create_recording(status="absent", duration=0), "absent", labels=LABELS)
    document = json.loads(archive_env.store.get_bytes(result.key))
    assert (document["labels"], document["policy"]) == (LABELS, "absent-short")
    assert document["policy_version"] == archive_env.policy.version
    head = archive_env.store._client.head_object(Bucket=archive_env.store.bucket, Key=result.key)
    assert "ObjectLockMode" not in head  # the rule says mode = "none"


def test_twilio_deletion_needs_both_the_setting_and_the_rules_permission(archive_env, sim) -> None:
    archive_env.policy = Policy.from_dict(POLICY)
    archive_env.options = ArchiveOptions(delete_after_archive=True)
    kept, deleted = sim.create_recording(duration=2), sim.create_recording(duration=2)
    assert not _archive(archive_env, kept, labels=LABELS).deleted_from_twilio
    assert not kept.deleted
    # A redelivery of the kept one does not delete it either: the document records the refusal.
    assert not _archive(archive_env, kept, labels=LABELS).deleted_from_twilio and not kept.deleted
    assert _archive(archive_env, deleted).deleted_from_twilio and deleted.deleted


def test_the_worker_records_the_policy_it_loaded(archive_env, tmp_path) -> None:
    from recvault.commands.worker import record_policy_loaded

    path = tmp_path / "policy.toml"
    path.write_text('[default]\nretention_days = 1\nmode = "GOVERNANCE"\n[[rule]]\nname = "r"\nsource = "DialVerb"\n')
    policy = Policy.load(path)
    settings = Settings(policy_file=path, s3_bucket=archive_env.store.bucket)
    record_policy_loaded(policy, archive_env.store, settings, actor="worker@host")
    [record] = _audit(archive_env.store, "policy-loaded")
    assert record["policy_version"] == policy.version and record["rules"] == ["r", "default"]
    assert record["actor"] == "worker@host" and record["policy_file"] == str(path)


def test_an_sse_kms_key_and_storage_class_go_on_every_write_request() -> None:
    # SeaweedFS has no KMS (it answers 500 to SSE-KMS writes), so the request parameters are the check.
    key = "arn:aws:kms:eu-west-1:111122223333:alias/recvault-legal"
    params = write_params("audio/x-wav", None, None, Retention(), Placement("GLACIER_IR", key))
    assert params["StorageClass"] == "GLACIER_IR"
    assert (params["ServerSideEncryption"], params["SSEKMSKeyId"]) == ("aws:kms", key)
    assert "ServerSideEncryption" not in write_params("audio/x-wav", None, None, None, Placement())
