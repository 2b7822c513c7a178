"""An archive that only recvault wrote, through every legitimate path, verifies clean.

Each finding `recvault audit verify` can make is a claim that something other than recvault
wrote to the archive. So everything recvault itself does in a day's work must leave nothing to
report: archiving, a price that arrives later, deleting Twilio's copy, a legal hold set and
released, an erasure, a dead letter replayed, a callback that is not `completed`, the ledger
flushed and the trail sealed. The command then exits 0, writes its report, and records its run.
"""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime

import pytest
import redis

from recvault.audit import chain
from recvault.audit.append import read_chain
from recvault.audit.ledger import ledger_row
from recvault.audit.ledger_flush import flush_accepted
from recvault.compliance.erasure import erase
from recvault.compliance.hold_selector import Selector
from recvault.compliance.holds import list_holds, release_hold, set_hold
from recvault.compliance.policy import Policy
from recvault.events import RecordingStatusEvent
from recvault.queue.celery_factory import ARCHIVE_TASK
from recvault.storage.base import Retention
from recvault.versions import MESSAGE_FIELD, MESSAGE_VERSION
from recvault.workers.archive import ArchiveOptions, archive_event
from recvault.workers.dead_letters import DeadLetters
from tests.fixtures.insider import LEDGER, TODAY, audited_by_the_cli
from tests.fixtures.sealing import seal_all

LOCKED = Policy.from_dict({"default": {"retention_days": 30, "mode": "GOVERNANCE", "delete_from_twilio": True}})
UNLOCKED = Policy.from_dict({"default": {"retention_days": 30, "mode": "none"}})


@pytest.mark.system
def test_an_archive_recvault_alone_wrote_verifies_clean_and_the_run_is_recorded(
        archive_env, sim, redis_url, tmp_path, monkeypatch, capsys) -> None:
    env = archive_env
    env.policy = LOCKED
    env.options = ArchiveOptions(delete_after_archive=True)
    store = env.store
    callbacks: list[tuple[str, str, str]] = []  # what ingest accepted: (RecordingSid, status, AccountSid)

    def archived(recording, status: str = "completed"):
        callbacks.append((recording.sid, status, recording.account_sid))
        return env.archive(recording, status)

    # Archived with its price known: Twilio's copy deleted at once.
    plain = sim.create_recording(duration=2)
    assert archived(plain).deleted_from_twilio

    # Archived while Twilio has no price yet; the refresh records it, then deletes Twilio's copy.
    priced_later = sim.create_recording(duration=3, price_delay=3600)
    pending = archived(priced_later)
    assert pending.price_pending and not pending.deleted_from_twilio
    priced_later.price_delay = 0
    assert env.refresh(priced_later, pending)
    assert json.loads(store.get_bytes(pending.key))["price"] is not None and priced_later.deleted

    # A legal hold set, then released.
    held = sim.create_recording(duration=2)
    archived(held)
    hold, chosen = set_hold(store, "", Selector((held.sid,)), reason="matter 12", actor="counsel",
                            now=datetime.now(UTC))
    assert [located.sid for located in chosen] == [held.sid]
    _, released, kept = release_hold(store, "", hold.hold_id, reason="settled", actor="counsel", now=datetime.now(UTC))
    assert released == [held.sid] and kept == {}
    assert not any(h.active for h in list_holds(store, ""))

    # Erased: a recording nothing locks.
    env.policy = UNLOCKED
    erased = sim.create_recording(duration=2)
    archived(erased)
    assert erase(store, "", erased.sid, reason="DSAR 12", requested_by="subject", actor="dpo",
                 now=datetime.now(UTC)).status == "erased"
    env.policy = LOCKED

    # Dead-lettered, then replayed to a worker that archives it.
    replayed = sim.create_recording(duration=2)
    callbacks.append((replayed.sid, "completed", replayed.account_sid))
    payload = {MESSAGE_FIELD: MESSAGE_VERSION, "params": env.event(replayed).params,
               "received_at": datetime.now(UTC).isoformat(), "idempotency_token": None}
    letters = DeadLetters.connect(redis_url, store=store)
    letter = letters.add(f"{replayed.sid}:completed", ARCHIVE_TASK, payload, reason="Twilio kept failing",
                         error="TransientError", attempts=5)
    outcomes: list[str] = []

    def publish(task: str, body) -> None:
        assert task == ARCHIVE_TASK
        outcomes.append(archive_event(RecordingStatusEvent.from_params(body["params"]),
                                      received_at=datetime.fromisoformat(body["received_at"]), twilio=env.twilio,
                                      store=store, policy=env.policy, options=env.options).outcome)

    assert letters.replay(letter, publish) is None
    assert outcomes == ["archived"] and letters.list() == []
    letters.close()

    # A callback that is not `completed`: kept as an event document.
    absent = sim.create_recording(duration=0, status="absent")
    assert archived(absent, "absent").outcome == "event-recorded"

    # Every accepted callback's ledger row, flushed to S3 as beat does; then the periods so far sealed.
    client = redis.Redis.from_url(redis_url)
    for sid, status, account in callbacks:
        client.xadd(LEDGER, {"r": ledger_row(sid, status, account, datetime.now(UTC).isoformat())})
    assert flush_accepted(client, LEDGER, store, "", Retention()) == len(callbacks)
    client.close()
    sealed = seal_all(store)
    assert sealed

    auditor = audited_by_the_cli(env, redis_url, tmp_path, monkeypatch)
    status, printed = auditor.verify(capsys, "--report", str(tmp_path / "report"))

    assert "DISCREPANCY" not in printed
    assert status == 0
    assert "5 of 5 accepted completed callback(s) accounted for: 0 discrepancy(ies)" in printed
    as_json, as_html = tmp_path / "report" / "report.json", tmp_path / "report" / "report.html"
    report = json.loads(as_json.read_text())
    # Four recordings with a document (the erased one has none left), the absent callback as an event.
    assert report["clean"] is True and report["totals"]["recordings"] == 4 and report["totals"]["rehashed"] == 4
    assert report["totals"]["events_absent"] == 1 and report["totals"]["seals_checked"] >= 1
    page = as_html.read_text()
    assert "<h2>Method</h2>" in page and "<h2>Not covered by this run</h2>" in page
    roots = [seal["root"] for seal in report["seals"]]
    assert roots and all(root in page for root in roots)
    digests = {path.name: hashlib.sha256(path.read_bytes()).hexdigest() for path in (as_json, as_html)}
    assert digests["report.json"] in page

    # The run is itself in the trail: today's system chain, naming both files by their SHA-256.
    entries, _, unreadable = read_chain(store, "", chain.system_chain(TODAY))
    [run] = [entry for entry in entries if entry.action == "audit-verified"]
    assert unreadable == []
    assert run.details["clean"] is True and run.details["findings"] == 0
    assert run.details["report_sha256"] == digests
