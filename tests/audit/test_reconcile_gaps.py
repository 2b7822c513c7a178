"""`audit verify` proves archived recordings are intact; `reconcile` finds what callbacks missed."""

from __future__ import annotations

import json
from datetime import UTC, datetime

from recvault import layout
from recvault.audit.verify.archive import Sample, verify_archive
from recvault.compliance.policy import Policy
from recvault.events import RecordingStatusEvent
from recvault.workers.reconcile import callback_params, reconcile


def test_audit_passes_intact_recordings_and_flags_tampered_ones(archive_env, sim) -> None:
    archive_env.policy = Policy.from_dict({"default": {"mode": "none"}})  # so the test can tamper
    today = datetime.now(UTC).strftime("%Y-%m-%d")

    def problems(**kwargs) -> dict[str, list[str]]:
        found: dict[str, list[str]] = {}
        for finding in verify_archive(archive_env.store, "", today, today, **kwargs).findings:
            found.setdefault(finding.subject, []).append(finding.problem)
        return found

    intact = archive_env.archive(sim.create_recording(duration=2))
    tampered = archive_env.archive(sim.create_recording(duration=3))
    assert problems() == {}

    document = json.loads(archive_env.store.get_bytes(tampered.key))
    archive_env.store.put_bytes(tampered.key, layout.json_line({**document, "media_sha256": "0" * 64}),
                                content_type="application/json", create_only=False)
    # A document rewritten to another hash is itself the finding: no entry vouches for it, re-hash or not.
    rewritten = {document["sid"]: ["a metadata document version that no audit entry records",
                                   "the current metadata document is not the one recvault wrote last"]}
    assert problems() == rewritten
    assert problems(sample=Sample(count=0)) == rewritten
    assert intact.key != tampered.key


def test_reconcile_lists_only_completed_recordings_missing_from_the_archive(archive_env, sim, sim_account) -> None:
    archived = sim.create_recording(duration=2)
    archive_env.archive(archived)
    missing = sim.create_recording(duration=3)
    sim.create_recording(status="absent")
    report = reconcile(archive_env.twilio, archive_env.store, "", sim_account.sid, date_from="2000-01-01",
                       date_to=None)
    assert [gap.sid for gap in report.missing] == [missing.sid]
    assert (report.listed, report.not_completed, report.archived) == (3, 1, 1)
    listed = archive_env.twilio.fetch_recording(archive_env.twilio.recording_url(sim_account.sid, missing.sid),
                                                sim_account.sid)
    params = callback_params(listed, archive_env.twilio.recording_url(sim_account.sid, missing.sid))
    event = RecordingStatusEvent.from_params(params)  # what reconcile queues is a valid callback
    assert event.recording_status == "completed" and event.recording_sid == missing.sid
