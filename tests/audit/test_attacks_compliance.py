"""An insider attacks the compliance records: forged tombstone, resurrection, wrong victim, forged hold release.

Each test is one attack of the audit proof's threat model, on SeaweedFS with Object Lock and the
real archive functions and simulator: the insider has the worker's own S3 rights (a plain
PutObject), and the GOVERNANCE bypass where the attack needs it (`insider_store`). Each ends as an
auditor sees it: `recvault audit verify`, run as the command, exits 1 naming what was forged, or
stays clean where the attack was refused.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
import redis

from recvault import layout
from recvault.audit.append import read_chain_originals
from recvault.audit.originals import versions_by_key
from recvault.audit.write import write_system_audit
from recvault.compliance.erasure import erase, pending, run_due
from recvault.compliance.hold_selector import Selector
from recvault.compliance.holds import list_holds, registry_findings, release_hold, set_hold
from recvault.compliance.policy import Policy
from recvault.compliance.tombstones import REFUSED_ERASED, is_erased, tombstone_findings
from recvault.errors import StorageRejected
from recvault.queue.celery_factory import ARCHIVE_TASK, create_celery
from recvault.settings import Settings
from recvault.storage.base import Retention
from recvault.versions import MESSAGE_FIELD, MESSAGE_VERSION
from recvault.workers.context import ProcessContext
from recvault.workers.dead_letters import DeadLetters
from recvault.workers.reconcile import queue_missing, reconcile, reconcile_writer
from recvault.workers.tasks import register_tasks
from tests.compliance.seed import soon
from tests.fixtures.insider import Attacked, attacked_archive, audited_by_the_cli

UNLOCKED = Policy.from_dict({"default": {"retention_days": 30, "mode": "none"}})


@pytest.fixture
def governance_archive(insider_store, sim, sim_account, redis_url, tmp_path, monkeypatch) -> Iterator[Attacked]:
    """Recordings archived under GOVERNANCE, on a store that honours the insider's bypass."""
    yield from attacked_archive("GOVERNANCE", insider_store, sim, sim_account, redis_url, tmp_path, monkeypatch)


@pytest.fixture
def auditor(archive_env, redis_url, tmp_path, monkeypatch) -> Attacked:
    """The `recvault audit verify` command, pointed at `archive_env`'s bucket."""
    return audited_by_the_cli(archive_env, redis_url, tmp_path, monkeypatch)


def refusals(store, sid: str) -> list[str]:
    """Who asked for each refused archive of an erased recording, in chain order."""
    return [e.details["asked_by"] for e in read_chain_originals(store, "", sid).entries if e.action == REFUSED_ERASED]


@pytest.mark.system
def test_a_forged_tombstone_over_a_recording_removed_with_the_bypass_does_not_account_for_it(
        governance_archive, capsys) -> None:
    env = governance_archive.env
    recording = env.sim.create_recording(duration=2)
    governance_archive.accept(recording.sid, recording.account_sid)  # its callback, as ingest accepted it
    result = env.archive(recording)
    client, bucket = env.store._client, env.store.bucket
    document = json.loads(env.store.get_bytes(result.key))
    for key in (document["media_key"], result.key):
        for version in versions_by_key(env.store, key)[key].versions:
            client.delete_object(Bucket=bucket, Key=key, VersionId=version.version_id, BypassGovernanceRetention=True)
    forged = layout.tombstone_key("", recording.sid)
    client.put_object(Bucket=bucket, Key=forged, Body=b"{}")

    genuine, findings = tombstone_findings(env.store, "")

    assert recording.sid not in genuine
    [finding] = findings
    assert (finding.kind, finding.check, finding.subject) == ("forged-tombstone", "completeness", recording.sid)
    assert finding.evidence["key"] == forged and finding.evidence["sha256"] == hashlib.sha256(b"{}").hexdigest()

    # The auditor's view: the tombstone is forged, and the recording it claims to account for is gone.
    status, printed = governance_archive.verify(capsys)
    assert status == 1
    assert f"DISCREPANCY [forged-tombstone] {recording.sid}" in printed
    assert f"DISCREPANCY [vanished-recording] {recording.sid}" in printed
    assert "0 of 1 accepted completed callback(s) accounted for" in printed


@pytest.mark.system  # builds a whole worker context
def test_an_erased_recording_is_not_archived_again_by_the_task_reconcile_or_a_replay(
        archive_env, auditor, sim, sim_account, s3_store, s3_endpoint, redis_url, tmp_path, capsys) -> None:
    archive_env.policy = UNLOCKED
    recording = sim.create_recording(duration=2)
    auditor.accept(recording.sid, recording.account_sid)
    archive_env.archive(recording)
    assert erase(s3_store, "", recording.sid, reason="DSAR 8", requested_by="subject", actor="dpo",
                 now=datetime.now(UTC)).status == "erased"
    tombstone = layout.tombstone_key("", recording.sid)
    asked_before = len([r for r in sim.state.requests if recording.sid in r.path])

    # The callback comes again (a redelivery, a late retry): the task ends done, not retried, not dead-lettered.
    settings = Settings(twilio_account_sid=sim_account.sid, twilio_auth_tokens=sim_account.token,
                        twilio_api_base_url=sim.base_url, broker_url=redis_url, s3_bucket=s3_store.bucket,
                        s3_endpoint_url=s3_endpoint, data_dir=tmp_path)
    app = create_celery(settings)
    process = ProcessContext(settings, app)
    process.build()
    register_tasks(app, process)
    payload = {MESSAGE_FIELD: MESSAGE_VERSION, "params": archive_env.event(recording).params,
               "received_at": datetime.now(UTC).isoformat(), "idempotency_token": None}
    assert app.tasks[ARCHIVE_TASK].apply(args=(payload,)).get() == "refused-erased"
    queue = redis.Redis.from_url(redis_url)
    assert queue.llen(settings.queue) == 0 and process.dead_letters.list() == []
    assert len([r for r in sim.state.requests if recording.sid in r.path]) == asked_before  # nothing downloaded
    assert not [key for key in s3_store.list_keys("") if recording.sid in key
                and not key.startswith((layout.AUDIT, layout.TOMBSTONES))]

    # reconcile --enqueue (and beat's daily run): reported as erased, not missing, and not queued.
    writer = reconcile_writer(settings, app)
    report = reconcile(archive_env.twilio, s3_store, "", sim_account.sid, date_from="2000-01-01", date_to=None,
                       enqueue=queue_missing(app, writer, settings.queue, archive_env.twilio))
    writer.close()
    assert [(gap.sid, gap.outcome, gap.tombstone) for gap in report.erased] == [(recording.sid, "erased", tombstone)]
    assert report.missing == [] and queue.llen(settings.queue) == 0
    assert report.summary().endswith("0 archived, 1 erased, 0 missing")

    # dlq replay of a letter about it: refused, kept for `dlq drop`.
    letters = DeadLetters.connect(redis_url, store=s3_store)
    letter = letters.add(f"{recording.sid}:completed", ARCHIVE_TASK, payload, reason="gone", error="RecordingGone",
                         attempts=1)
    published: list[object] = []
    assert letters.replay(letter, lambda task, body: published.append(body)) == tombstone
    assert published == [] and [kept.id for kept in letters.list()] == [letter.id]
    letters.close()
    queue.close()

    assert refusals(s3_store, recording.sid) == ["archive task", "reconcile", "dlq replay"]
    [refused] = [e for e in read_chain_originals(s3_store, "", recording.sid).entries if e.action == REFUSED_ERASED
                 and e.details["asked_by"] == "archive task"]
    assert refused.details == {"tombstone": tombstone, "asked_by": "archive task", "status": "completed"}

    # The auditor's view: the recording was archived once and erased; the refusals changed nothing to report.
    actions = [e.action for e in read_chain_originals(s3_store, "", recording.sid).entries]
    assert actions.count("archived") == 1 and "erased" in actions
    status, printed = auditor.verify(capsys)
    assert status == 0
    assert "DISCREPANCY" not in printed and recording.sid not in printed
    assert "1 of 1 accepted completed callback(s) accounted for: 0 discrepancy(ies)" in printed


@pytest.mark.system
def test_a_document_naming_another_recordings_media_does_not_make_erase_delete_it(
        archive_env, auditor, sim, capsys) -> None:
    archive_env.policy = UNLOCKED
    victim = archive_env.archive(sim.create_recording(duration=2))
    victim_sid = json.loads(archive_env.store.get_bytes(victim.key))["sid"]
    attacker = archive_env.archive(sim.create_recording(duration=3))
    store = archive_env.store
    assert victim.media is not None and attacker.media is not None
    document = json.loads(store.get_bytes(attacker.key))
    # A plain PutObject: a new version of recording A's document, naming recording B's media.
    store._client.put_object(Bucket=store.bucket, Key=attacker.key,
                             Body=layout.json_line({**document, "media_key": victim.media.key}))

    outcome = erase(store, "", document["sid"], reason="DSAR 9", requested_by="subject", actor="dpo",
                    now=datetime.now(UTC))

    assert outcome.status == "mismatch"
    assert outcome.problem is not None and document["sid"] in outcome.problem
    assert victim.media.key in outcome.problem and attacker.media.key in outcome.problem
    digest = hashlib.sha256(b"".join(store.iter_bytes(victim.media.key))).hexdigest()
    assert digest == victim.media.sha256_hex
    assert store.head(attacker.media.key) is not None and store.head(victim.key) is not None
    assert store.head(layout.tombstone_key("", document["sid"])) is None
    refused = [e.details for e in read_chain_originals(store, "", document["sid"]).entries
               if e.action == "erase-refused"]
    assert [details["refused_because"] for details in refused] == [[outcome.problem]]

    # The auditor's view: the forged version of A's document is vouched for by no entry; B is untouched.
    status, printed = auditor.verify(capsys)
    assert status == 1
    reported = [line for line in printed.splitlines() if line.startswith("DISCREPANCY")]
    assert reported and all(line.startswith(f"DISCREPANCY [unvouched-document] {document['sid']}: ")
                            for line in reported)
    assert victim_sid not in printed


@pytest.mark.system
def test_a_forged_release_of_one_hold_does_not_let_another_release_drop_its_legal_hold(
        archive_env, auditor, sim, capsys) -> None:
    archive_env.policy = Policy.from_dict({"default": {"retention_days": 30, "mode": "GOVERNANCE"}})
    result = archive_env.archive(sim.create_recording(duration=2))
    store, sid = archive_env.store, json.loads(archive_env.store.get_bytes(result.key))["sid"]
    locked = Retention("COMPLIANCE", soon(60))
    for hold_id in ("H-A", "H-B"):
        set_hold(store, "", Selector((sid,)), reason=f"matter {hold_id}", actor="counsel", now=datetime.now(UTC),
                 hold_id=hold_id, record_retention=locked)
    store._client.put_object(Bucket=store.bucket, Key="holds/x/released.json", Body=b'{"hold_id": "H-A"}')

    _, released, kept = release_hold(store, "", "H-B", reason="closed", actor="counsel", now=datetime.now(UTC),
                                     record_retention=locked)

    assert released == [] and kept == {sid: ["H-A"]}
    assert result.media is not None and store.legal_hold(result.media.key)
    assert [h.hold_id for h in list_holds(store, "") if h.active] == ["H-A"]
    [finding] = registry_findings(store, "")
    assert (finding.kind, finding.check, finding.subject) == ("forged-hold-record", "registry", "H-A")
    assert finding.evidence["key"] == "holds/x/released.json" and finding.evidence["would_expose"] == [sid]

    # The auditor's view: the forged record names H-A, and what it would have exposed.
    status, printed = auditor.verify(capsys)
    assert status == 1
    assert [line for line in printed.splitlines() if line.startswith("DISCREPANCY")] == [
        f"DISCREPANCY [forged-hold-record] H-A: {finding.problem}"]
    status, printed = auditor.verify(capsys, "--json")
    [reported] = json.loads(printed.splitlines()[0])["findings"]
    assert status == 1 and (reported["kind"], reported["subject"]) == ("forged-hold-record", "H-A")
    assert reported["evidence"]["would_expose"] == [sid]


@pytest.mark.system
def test_a_forged_queued_erasure_request_erases_nothing_and_is_reported(archive_env, sim, auditor, capsys) -> None:
    """PutObject under erasures/pending/ naming a victim: the hourly run must not erase it."""
    archive_env.policy = UNLOCKED
    victim = sim.create_recording(duration=2)
    archive_env.archive(victim)
    key = layout.erasure_key("", "RE" + "f" * 32, "pending")
    forged = {"recording_sid": victim.sid, "reason": "x", "requested_by": "y", "at": datetime.now(UTC).isoformat()}
    archive_env.store._client.put_object(Bucket=archive_env.store.bucket, Key=key, Body=layout.json_line(forged))
    # Under the victim's own key too: the request's key and body agree, and still nothing vouches for it.
    own = layout.erasure_key("", victim.sid, "pending")
    archive_env.store._client.put_object(Bucket=archive_env.store.bucket, Key=own, Body=layout.json_line(forged))

    assert run_due(archive_env.store, "", datetime.now(UTC)) == []
    assert archive_env.store.head(layout.metadata_key("", datetime.now(UTC).strftime("%Y-%m-%d"), victim.sid))
    status, printed = auditor.verify(capsys)
    assert status == 1
    assert f"DISCREPANCY [forged-erasure-request] {'RE' + 'f' * 32}" in printed
    assert f"DISCREPANCY [forged-erasure-request] {victim.sid}" in printed


@pytest.mark.system
def test_an_erasure_queued_by_erase_still_runs_when_allowed(archive_env, sim) -> None:
    """The genuine path: `erase --when-allowed` queues it (vouched by `erase-queued`), the run erases it."""
    archive_env.policy = Policy.from_dict({"default": {"retention_days": 30, "mode": "GOVERNANCE"}})
    recording = sim.create_recording(duration=2)
    archive_env.archive(recording)
    now = datetime.now(UTC)
    queued = erase(archive_env.store, "", recording.sid, reason="r", requested_by="s", actor="dpo", now=now,
                   when_allowed=True)
    assert queued.status == "queued"
    [request] = pending(archive_env.store, "")
    assert request["recording_sid"] == recording.sid


@pytest.mark.system
def test_a_hold_release_dated_in_the_future_does_not_count(archive_env, sim) -> None:
    """A release whose `at` names a day no one checks yet, vouched by an entry in that day's chain."""
    recording = sim.create_recording(duration=2)
    archive_env.archive(recording)
    now = datetime.now(UTC)
    hold, _ = set_hold(archive_env.store, "", Selector((recording.sid,)), reason="SEC inquiry", actor="counsel",
                       now=now, hold_id="H-A")
    later = datetime(2031, 1, 1, 12, tzinfo=UTC)
    release = {"hold_id": "H-A", "reason": "x", "actor": "y", "at": later.isoformat()}
    body = layout.json_line(release)
    key = layout.hold_key("", "H-A", "released")
    archive_env.store._client.put_object(Bucket=archive_env.store.bucket, Key=key, Body=body)
    write_system_audit(archive_env.store, "", "hold-released",
                       {"hold_id": "H-A", "key": key, "sha256": hashlib.sha256(body).hexdigest()}, later)
    assert [h.hold_id for h in list_holds(archive_env.store, "") if h.active] == ["H-A"]
    [finding] = registry_findings(archive_env.store, "")
    assert finding.kind == "forged-hold-record" and "later than S3 stored it" in finding.problem


@pytest.mark.system
def test_a_forged_absent_event_does_not_account_for_a_removed_recording(archive_env, sim, auditor, capsys) -> None:
    archive_env.policy = UNLOCKED
    recording = sim.create_recording(duration=2)
    auditor.accept(recording.sid, recording.account_sid)
    archive_env.archive(recording)
    day = datetime.now(UTC).strftime("%Y-%m-%d")
    for prefix in (f"{layout.MEDIA}date={day}/", layout.metadata_key("", day, recording.sid),
                   layout.chain_prefix("", recording.sid), f"{layout.AUDIT_INDEX}date={day}/{recording.sid}"):
        auditor.erase_every_version(prefix)
    archive_env.store._client.put_object(Bucket=archive_env.store.bucket,
                                         Key=layout.event_key("", day, recording.sid, "absent"),
                                         Body=layout.json_line({"sid": recording.sid, "status": "absent"}))
    status, printed = auditor.verify(capsys)
    assert status == 1 and f"DISCREPANCY [vanished-recording] {recording.sid}" in printed


@pytest.mark.system
def test_a_tombstone_is_locked_so_an_erased_recording_cannot_be_brought_back(archive_env, sim) -> None:
    archive_env.policy = UNLOCKED
    recording = sim.create_recording(duration=2)
    archive_env.archive(recording)
    now = datetime.now(UTC)
    locked = Retention(mode="COMPLIANCE", until=soon(3600))
    assert erase(archive_env.store, "", recording.sid, reason="r", requested_by="s", actor="dpo", now=now,
                 record_retention=locked).status == "erased"
    key = layout.tombstone_key("", recording.sid)
    [version] = [v for v in archive_env.store.list_versions(key) if v.key == key]
    assert archive_env.store.lock_of(key, version.version_id).mode == "COMPLIANCE"
    with pytest.raises(StorageRejected):
        archive_env.store.delete_version(key, version.version_id)
    assert is_erased(archive_env.store, "", recording.sid) == key
