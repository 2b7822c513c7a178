"""`recvault audit verify` on real SeaweedFS: a clean archive passes; each kind of tampering is reported."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest
import redis

from recvault import layout
from recvault.audit import chain
from recvault.audit.append import read_chain
from recvault.audit.ledger import ledger_row
from recvault.audit.ledger_flush import flush_accepted
from recvault.audit.verify.archive import Report, Sample, verify_archive
from recvault.audit.write import write_audit
from recvault.cli import main
from recvault.compliance.erasure import erase
from recvault.compliance.policy import Policy
from recvault.errors import TransientError
from recvault.storage.base import Retention
from tests.fixtures.sealing import seal_all

TODAY = datetime.now(UTC).strftime("%Y-%m-%d")
STREAM = "recvault-test:accepted"


@dataclass
class Audited:
    env: object
    sids: list[str]
    never_archived: str

    def verify(self, **kwargs) -> Report:
        return verify_archive(self.env.store, "", TODAY, TODAY, **kwargs)

    def findings(self) -> list[tuple[str, str, str]]:
        return [(f.kind, f.subject, f.problem) for f in self.verify().findings]

    def kinds(self) -> set[tuple[str, str]]:
        return {(f.kind, f.subject) for f in self.verify().findings}


def accept(redis_url: str, store, rows: list[tuple[str, str, str]]) -> None:
    """Rows into a ledger stream as ingest's script adds them, then flushed to S3 as beat does."""
    client = redis.Redis.from_url(redis_url)
    for sid, status, account in rows:
        client.xadd(STREAM, {"r": ledger_row(sid, status, account, datetime.now(UTC).isoformat())})
    flush_accepted(client, STREAM, store, "", Retention())
    client.close()


def _audited(archive_env, sim, redis_url, *, sealed: bool) -> Audited:
    recordings = [sim.create_recording(duration=2), sim.create_recording(duration=3)]
    for recording in recordings:
        archive_env.archive(recording)
        write_audit(archive_env.store, "", recording.sid, "verified", {"by": "test"}, None, datetime.now(UTC))
    accept(redis_url, archive_env.store, [(r.sid, "completed", r.account_sid) for r in recordings])
    if sealed:
        seal_all(archive_env.store)
    return Audited(archive_env, [r.sid for r in recordings], "")


@pytest.fixture
def audited(archive_env, sim, redis_url) -> Audited:
    """Two recordings archived, each with two audit entries, their callbacks in the ledger, the
    current period sealed as if it had ended (tests/fixtures/sealing.py)."""
    return _audited(archive_env, sim, redis_url, sealed=True)


@pytest.fixture
def open_audited(archive_env, sim, redis_url) -> Audited:
    """The same, with nothing sealed yet: for what is written after it (a real sealer seals only
    periods that are over, so nothing is written into a sealed period)."""
    return _audited(archive_env, sim, redis_url, sealed=False)


def s3(audited: Audited):
    return audited.env.store._client, audited.env.store.bucket


def test_a_clean_archive_verifies_with_no_discrepancy(audited) -> None:
    report = audited.verify()
    assert report.findings == []
    assert report.totals["recordings"] == 2 and report.totals["rehashed"] == 2
    sealer_entries = len(read_chain(audited.env.store, "", chain.system_chain(TODAY))[0])  # one per period sealed
    assert report.totals["audit_entries"] == 4 + sealer_entries and report.totals["seals_checked"] >= 1
    # Every version listed: two media, two documents, four entries' index rows, the ledger object.
    assert report.totals["versions_listed"] >= 9
    assert report.totals["accepted_completed"] == 2
    assert audited.verify(sample=Sample(count=1)).totals["rehashed"] == 1


def test_a_deleted_audit_entry_is_reported(audited) -> None:
    client, bucket = s3(audited)
    key = layout.chain_key("", audited.sids[0], 2)  # the test's own entry, written with no lock
    client.delete_object(Bucket=bucket, Key=key)  # a delete marker: the entry vanishes from listings
    # Hidden, not gone: the original under the marker still links and is still sealed; the marker is the finding.
    assert audited.kinds() == {("rewritten-entry", audited.sids[0])}
    # Removed for good (no lock on this test's entries): the seal names what is gone, the chain its gap.
    for version in client.list_object_versions(Bucket=bucket, Prefix=key)["Versions"]:
        client.delete_object(Bucket=bucket, Key=key, VersionId=version["VersionId"])
    assert audited.kinds() == {("altered-sealed-entry", key), ("rewritten-entry", audited.sids[0])}


def test_an_edited_audit_entry_is_reported(audited) -> None:
    store = audited.env.store
    key = layout.chain_key("", audited.sids[0], 1)
    record = json.loads(store.get_bytes(key))
    record["details"]["sha256"] = "0" * 64
    store.put_bytes(key, (json.dumps(record, sort_keys=True, separators=(",", ":")) + "\n").encode(),
                    content_type="application/json", create_only=False)
    # A new version over the entry: the original is still what counts, and the rewrite is the finding.
    assert audited.kinds() == {("rewritten-entry", audited.sids[0])}


def test_reordered_audit_entries_are_reported(audited) -> None:
    store = audited.env.store
    first, second = (layout.chain_key("", audited.sids[1], n) for n in (1, 2))
    one, two = store.get_bytes(first), store.get_bytes(second)
    store.put_bytes(first, two, content_type="application/json", create_only=False)
    store.put_bytes(second, one, content_type="application/json", create_only=False)
    assert audited.kinds() == {("rewritten-entry", audited.sids[1])}


def test_a_modified_archived_object_is_reported(audited) -> None:
    document = json.loads(audited.env.store.get_bytes(_metadata_key(audited, audited.sids[0])))
    client, bucket = s3(audited)
    client.put_object(Bucket=bucket, Key=document["media_key"], Body=b"RIFF not the recording")
    # The archived version is still there and intact; the one put over it is the finding.
    assert audited.kinds() == {("substituted-media", audited.sids[0])}


def test_a_delete_marker_over_media_is_reported(audited) -> None:
    document = json.loads(audited.env.store.get_bytes(_metadata_key(audited, audited.sids[1])))
    client, bucket = s3(audited)
    client.delete_object(Bucket=bucket, Key=document["media_key"])
    assert audited.kinds() == {("substituted-media", audited.sids[1])}
    [finding] = audited.verify().findings
    assert finding.evidence["versions_found"][-1]["delete_marker"] is True


def test_a_callback_accepted_but_never_archived_is_reported(audited, redis_url) -> None:
    lost = "RE" + "d" * 32
    accept(redis_url, audited.env.store, [(lost, "completed", "AC" + "d" * 32), (lost, "completed", "AC" + "d" * 32)])
    [finding] = audited.verify().findings
    assert (finding.kind, finding.subject) == ("vanished-recording", lost)
    assert finding.evidence["ledger"].startswith(f"audit/accepted/date={TODAY}/")


def test_an_erased_recording_counts_as_accounted_for_and_its_chain_stays_whole(open_audited, sim, redis_url) -> None:
    audited = open_audited
    env = audited.env
    env.policy = Policy.from_dict({"default": {"mode": "none"}})
    recording = sim.create_recording(duration=2)
    env.archive(recording)
    accept(redis_url, env.store, [(recording.sid, "completed", recording.account_sid)])
    outcome = erase(env.store, "", recording.sid, reason="data-subject request", requested_by="subject",
                    actor="dpo", now=datetime.now(UTC))
    assert outcome.status == "erased"
    assert audited.verify().findings == []
    # Without its tombstone the same recording is a gap.
    client = env.store._client
    listed = client.list_object_versions(Bucket=env.store.bucket, Prefix=f"tombstones/{recording.sid}")
    for version in listed["Versions"]:
        client.delete_object(Bucket=env.store.bucket, Key=version["Key"], VersionId=version["VersionId"])
    assert [(f.kind, f.subject) for f in audited.verify().findings] == [("vanished-recording", recording.sid)]


def _metadata_key(audited: Audited, sid: str) -> str:
    [key] = [k for k in audited.env.store.list_keys("metadata/") if sid in k]
    return key


@pytest.fixture
def cli_env(archive_env, s3_endpoint, redis_url, tmp_path, monkeypatch) -> None:
    for name, value in {"RECVAULT_S3_BUCKET": archive_env.store.bucket, "RECVAULT_S3_ENDPOINT_URL": s3_endpoint,
                        "RECVAULT_BROKER_URL": redis_url, "RECVAULT_DATA_DIR": str(tmp_path),
                        "RECVAULT_LOG_LEVEL": "WARNING"}.items():
        monkeypatch.setenv(name, value)


def test_the_command_exits_0_when_clean_1_on_a_discrepancy_2_on_misuse_and_writes_its_reports(
        open_audited, cli_env, tmp_path, capsys) -> None:
    audited = open_audited
    assert main(["audit", "verify", "--from", TODAY, "--report", str(tmp_path / "clean")]) == 0
    assert json.loads((tmp_path / "clean" / "report.json").read_text())["clean"] is True
    assert main(["audit", "--date", TODAY]) == 0  # the older spelling still verifies
    assert main(["audit", "verify", "--json"]) == 0  # the whole archive: its first day to today
    assert json.loads(capsys.readouterr().out)["range"] == {"from": TODAY, "to": TODAY}
    client, bucket = s3(audited)
    key = layout.chain_key("", audited.sids[0], 2)
    client.put_object(Bucket=bucket, Key=key, Body=b'{"note": "<script>alert(1)</script>"}\n')
    assert main(["audit", "verify", "--from", TODAY, "--to", TODAY, "--report", str(tmp_path / "bad")]) == 1
    html = (tmp_path / "bad" / "report.html").read_text()
    assert "<script>" not in html
    assert "rewritten-entry" in html and "Findings by kind" in html and "Method" in html
    report = json.loads((tmp_path / "bad" / "report.json").read_text())
    assert report["clean"] is False and report["per_day"][TODAY]["recordings"] == 2
    assert main(["audit", "verify", "--from", TODAY, "--to", "2000-01-01"]) == 2
    with pytest.raises(SystemExit) as usage:
        main(["audit", "verify", "--sample", "0"])
    assert usage.value.code == 2
    assert "DISCREPANCY [rewritten-entry]" in capsys.readouterr().out


def test_show_prints_the_chain_of_custody_from_the_accepted_callback(audited, cli_env, redis_url, capsys) -> None:
    sid = audited.sids[0]
    assert main(["audit", "show", sid, "--json"]) == 0
    steps = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [s["action"] for s in steps] == ["callback-accepted (completed)", "archived", "verified"]
    assert [s["link"] for s in steps] == ["accepted", "genesis", "ok"]
    assert [s["sealed"] for s in steps[1:]] == ["sealed", "sealed"]
    assert steps[1]["sha256"] == read_chain(audited.env.store, "", sid)[0][0].sha256
    with pytest.raises(SystemExit):
        main(["audit", "show", "not-a-sid"])
    later = datetime.now(UTC) + timedelta(days=1)  # a day not sealed yet
    write_audit(audited.env.store, "", sid, "held", {"reason": "case 12"}, None, later)
    assert main(["audit", "show", sid]) == 0
    shown = capsys.readouterr().out
    assert "held" in shown and "not sealed yet" in shown
    lost = "RE" + "9" * 32  # accepted, never archived: only its ledger row tells its story
    accept(redis_url, audited.env.store, [(lost, "completed", "AC" + "9" * 32)])
    assert main(["audit", "show", lost]) == 1  # nothing found around an entry it does not have
    assert main(["audit", "show", lost, "--date", TODAY, "--json"]) == 0
    [step] = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert step["action"] == "callback-accepted (completed)"


def test_an_archived_recording_without_its_archived_entry_is_reported_and_a_redelivery_repairs_it(
        audited) -> None:
    from recvault.audit.write import ENTRY_GRACE, ensure_archived_entry

    store = audited.env.store
    orphan = "RE" + "f" * 32  # a document whose attempt died before its `archived` entry
    document = {**json.loads(store.get_bytes(_metadata_key(audited, audited.sids[0]))), "sid": orphan}
    store.put_bytes(layout.metadata_key("", TODAY, orphan), layout.json_line(document),
                    content_type="application/json")
    assert ("unrecorded", orphan, "archived, but its audit chain has no `archived` entry") in audited.findings()
    # Within the grace the attempt that wrote it may still be writing its entry: wait, then
    # retry later rather than settle without it (a task settled here would never come back).
    with pytest.raises(TransientError, match="not written yet"):
        ensure_archived_entry(store, "", document, datetime.now(UTC), wait=0.3)
    assert read_chain(store, "", orphan)[0] == []
    assert ensure_archived_entry(store, "", document, datetime.now(UTC) + ENTRY_GRACE)
    [repaired] = read_chain(store, "", orphan)[0]
    assert repaired.action == "archived" and repaired.details["recorded_late"] is True
    assert repaired.details["sha256"] == document["media_sha256"]
    assert not ensure_archived_entry(store, "", document, datetime.now(UTC))  # written once, then found


def test_a_later_attempt_finds_the_entry_a_running_attempt_writes_while_it_waits(audited) -> None:
    from recvault.audit.write import ensure_archived_entry

    store = audited.env.store
    racing = "RE" + "e" * 32
    document = {**json.loads(store.get_bytes(_metadata_key(audited, audited.sids[0]))), "sid": racing}
    written = []

    def sleep(seconds: float) -> None:  # the running attempt writes its entry during the wait
        if not written:
            written.append(write_audit(store, "", racing, "archived", {"by": "the running attempt"}, None,
                                       datetime.now(UTC)))

    assert not ensure_archived_entry(store, "", document, datetime.now(UTC), wait=2.0, sleep=sleep)
    assert [e.action for e in read_chain(store, "", racing)[0]] == ["archived"]


def test_an_entry_removed_before_its_day_is_sealed_is_found_through_the_index(open_audited) -> None:
    audited = open_audited
    tomorrow = (datetime.now(UTC) + timedelta(days=1)).strftime("%Y-%m-%d")
    store = audited.env.store
    write_audit(store, "", audited.sids[0], "held", {"reason": "case 12"}, None, datetime.now(UTC) + timedelta(days=1))
    assert verify_archive(store, "", tomorrow, tomorrow).findings == []
    client, bucket = s3(audited)
    entry = layout.chain_key("", audited.sids[0], 3)
    version = client.head_object(Bucket=bucket, Key=entry)["VersionId"]
    # Only an insider with a GOVERNANCE bypass could do this to a locked entry; this one has no lock.
    client.delete_object(Bucket=bucket, Key=entry, VersionId=version)
    [finding] = verify_archive(store, "", tomorrow, tomorrow).findings
    assert (finding.kind, finding.subject) == ("index-without-entry", entry) and "does not exist" in finding.problem


def test_a_legal_hold_set_with_recvault_hold_is_expected_not_reported(audited) -> None:
    from recvault.compliance.hold_selector import Selector
    from recvault.compliance.holds import set_hold

    store = audited.env.store
    hold, _ = set_hold(store, "", Selector((audited.sids[0],)), reason="matter 7", actor="counsel",
                       now=datetime.now(UTC))
    assert _besides_the_seal(audited.verify()) == []
    # A release put in the registry by hand, vouched by nothing: ignored for the hold, reported as forged.
    store._client.put_object(Bucket=store.bucket, Key=f"holds/{hold.hold_id}/released.json",
                             Body=json.dumps({"hold_id": hold.hold_id, "reason": "x", "actor": "y",
                                              "at": datetime.now(UTC).isoformat()}).encode(),
                             ChecksumAlgorithm="SHA256")
    found = {(f.kind, f.subject) for f in _besides_the_seal(audited.verify())}
    assert found == {("forged-hold-record", hold.hold_id)}


def test_media_gone_after_its_retention_ended_counts_as_expired_not_as_tampering(audited) -> None:
    store = audited.env.store
    expired = "RE" + "c" * 32
    document = {**json.loads(store.get_bytes(_metadata_key(audited, audited.sids[0]))), "sid": expired,
                "media_key": f"media/date={TODAY}/AC{'c' * 32}/{expired}.wav", "legal_hold": False,
                "retention_mode": "GOVERNANCE",
                "retain_until": (datetime.now(UTC) - timedelta(days=1)).isoformat()}
    store.put_bytes(document["media_key"], b"RIFF", content_type="audio/x-wav")
    store._client.delete_object(Bucket=store.bucket, Key=document["media_key"])  # lifecycle's delete marker
    store.put_bytes(layout.metadata_key("", TODAY, expired), layout.json_line(document),
                    content_type="application/json")
    write_audit(store, "", expired, "archived", {"media_key": document["media_key"]}, None, datetime.now(UTC))
    report = audited.verify()
    assert _besides_the_seal(report) == [] and report.totals["expired"] == 1
    # Still within its retention, the same absence is a discrepancy.
    document["retain_until"] = (datetime.now(UTC) + timedelta(days=1)).isoformat()
    store.put_bytes(layout.metadata_key("", TODAY, expired), layout.json_line(document),
                    content_type="application/json", create_only=False)
    assert {(f.kind, f.subject) for f in audited.verify().findings} >= {("missing-media", expired)}


def _besides_the_seal(report: Report) -> list:
    """Findings other than entries missing from today's seal: the fixture sealed today before these
    tests added entries, which a real sealer (sealing finished days only) never does."""
    return [f for f in report.findings if f.kind != "unsealed-entry"]
