"""Purge on SeaweedFS: deletes what has expired, keeps what is locked or held, leaves tombstones and a record."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

from recvault import layout
from recvault.compliance.hold_selector import Selector
from recvault.compliance.holds import set_hold
from recvault.compliance.policy import Policy
from recvault.compliance.purge import expires_at, purge
from recvault.storage.base import Retention
from tests.compliance.seed import audit_trail, seed

PAST = datetime.now(UTC) - timedelta(days=2)


def remaining(store, prefix, seeded) -> int:
    return sum(1 for key in seeded.keys for v in store.list_versions(key) if v.key == key)


def system_records(store, prefix, action: str) -> list[dict]:
    return [record for _, record in audit_trail(store, prefix, action=action)]


def test_purge_deletes_the_expired_and_keeps_the_retained_the_held_and_the_still_locked(vault, prefix) -> None:
    expired = seed(vault, prefix=prefix, recorded_until=PAST)
    retained = seed(vault, prefix=prefix, lock=Retention("GOVERNANCE", datetime.now(UTC) + timedelta(days=5)))
    held = seed(vault, prefix=prefix, recorded_until=PAST)
    hold, _ = set_hold(vault, prefix, Selector((held.sid,)), reason="matter", actor="legal", now=datetime.now(UTC))
    # The document says "expired", the objects are still locked: purge looks at the objects, not the document.
    locked = seed(vault, prefix=prefix, lock=Retention("COMPLIANCE", datetime.now(UTC) + timedelta(days=5)),
                  recorded_until=PAST)

    dry = purge(vault, prefix, now=datetime.now(UTC), dry_run=True)
    assert [(o.recording_sid, o.status) for o in dry.outcomes if o.status == "due"] == [(expired.sid, "due")]
    assert remaining(vault, prefix, expired) == 3 and system_records(vault, prefix, "purge-run") == []

    report = purge(vault, prefix, now=datetime.now(UTC), actor="ops")

    statuses = {o.recording_sid: o.status for o in report.outcomes}
    assert statuses == {expired.sid: "purged", held.sid: "refused", locked.sid: "refused"}
    assert report.not_due == 1 and report.examined == 4
    assert remaining(vault, prefix, expired) == 0
    assert [remaining(vault, prefix, kept) for kept in (retained, held, locked)] == [3, 3, 3]
    refusals = {o.recording_sid: o.refusal for o in report.outcomes if o.refusal}
    assert refusals[held.sid].reasons == [f"legal hold: {hold.hold_id}"]
    assert "retention" in refusals[locked.sid].reasons[0]
    tombstone = json.loads(vault.get_bytes(layout.tombstone_key(prefix, expired.sid)))
    assert (tombstone["action"], tombstone["requested_by"], tombstone["reason"]) == ("purged", "ops", "retention ended")
    assert audit_trail(vault, prefix, expired.sid, "purged")
    (summary,) = system_records(vault, prefix, "purge-run")
    assert (summary["purged"], summary["kept"], summary["actor"]) == (1, 2, "ops")


def test_purge_date_before_reaches_only_older_days(vault, prefix) -> None:
    old = seed(vault, prefix=prefix, date="2026-01-10", recorded_until=PAST)
    new = seed(vault, prefix=prefix, date="2026-01-11", recorded_until=PAST)
    report = purge(vault, prefix, now=datetime.now(UTC), date_before="2026-01-11")
    assert [o.recording_sid for o in report.outcomes] == [old.sid]
    assert remaining(vault, prefix, new) == 3


def test_expiry_is_the_retain_until_else_the_archive_time_plus_the_rule_days() -> None:
    policy = Policy.from_dict({"default": {"retention_days": 30, "mode": "none"},
                               "rule": [{"name": "long", "retention_days": 90}]})
    until = datetime(2027, 1, 1, tzinfo=UTC)
    assert expires_at({"retention_mode": "COMPLIANCE", "retain_until": until.isoformat()}, policy) == until
    archived = datetime(2026, 1, 1, tzinfo=UTC)
    assert expires_at({"policy": "long", "archived_at": archived.isoformat()}, policy) == archived + timedelta(90)
    assert expires_at({"policy": "default", "archived_at": archived.isoformat()}, policy) == archived + timedelta(30)
    assert expires_at({"policy": "gone", "archived_at": archived.isoformat()}, policy) is None
    assert expires_at({"archived_at": archived.isoformat()}, None) is None
