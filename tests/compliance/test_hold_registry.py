"""The holds registry counts only records a system-chain entry vouches for, filed under the id they name."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta

import pytest

from recvault import layout
from recvault.audit.chain import Entry
from recvault.compliance.hold_registry import parse_record_key, record_day, record_problem, write_record
from recvault.compliance.hold_selector import Selector
from recvault.compliance.holds import HoldError, list_holds, registry_findings, release_hold, set_hold
from recvault.storage.base import Retention
from tests.compliance.seed import audit_trail, seed, soon

KEY = "p/holds/H-A/set.json"
AT = "2026-11-24T23:30:00-02:00"  # 01:30 UTC the next day: the entry is in that day's system chain


def entry(action: str, **details: object) -> Entry:
    return Entry(key="k", seq=1, prev="p", at="2026-11-25T01:30:00+00:00", actor="a", action=action,
                 details=dict(details), chain="system-2026-11-25", sha256="c" * 64)


def test_registry_keys_and_the_day_a_record_names() -> None:
    assert parse_record_key("p/", KEY) == ("H-A", "set")
    assert parse_record_key("p/", "p/holds/H-A/released.json") == ("H-A", "released")
    for other in ("p/holds/H-A/notes.json", "p/holds/set.json", "p/holds/H-A/x/set.json", "q/holds/H-A/set.json"):
        assert parse_record_key("p/", other) is None
    assert record_day({"at": AT}) == "2026-11-25"
    assert record_day({"at": "2026-11-24T10:00:00"}) == "2026-11-24"  # no zone: UTC
    assert record_day({"at": "yesterday"}) is None and record_day({}) is None


def test_a_record_counts_only_filed_under_its_own_id_and_vouched_for_by_key_and_bytes() -> None:
    record = {"hold_id": "H-A", "at": AT}
    vouching = entry("hold-set", hold_id="H-A", key=KEY, sha256="a" * 64)
    assert record_problem("H-A", "set", KEY, record, "a" * 64, [vouching]) is None
    assert "no `hold-set` entry in the system chain of 2026-11-25" in str(
        record_problem("H-A", "set", KEY, record, "b" * 64, [vouching]))
    assert record_problem("H-A", "released", KEY, record, "a" * 64, [vouching]) is not None  # a set entry
    assert record_problem("H-A", "set", KEY, record, "a" * 64, [entry("hold-set", hold_id="H-A", key="p/x",
                                                                      sha256="a" * 64)]) is not None
    misfiled = record_problem("H-B", "set", "p/holds/H-B/set.json", record, "a" * 64, [vouching])
    assert misfiled == "p/holds/H-B/set.json names hold 'H-A' but is filed under 'H-B'"
    assert "names no day" in str(record_problem("H-A", "set", KEY, {"hold_id": "H-A"}, "a" * 64, [vouching]))


def test_a_hold_record_is_locked_and_vouched_for_by_a_system_entry(vault, prefix) -> None:
    seeded = seed(vault, prefix=prefix)
    until = soon(30).replace(microsecond=0)
    hold, _ = set_hold(vault, prefix, Selector((seeded.sid,)), reason="matter 1", actor="counsel",
                       now=datetime.now(UTC), hold_id="H-1", record_retention=Retention("COMPLIANCE", until))
    release_hold(vault, prefix, "H-1", reason="closed", actor="counsel", now=datetime.now(UTC),
                 record_retention=Retention("COMPLIANCE", until))

    for state, action in (("set", "hold-set"), ("released", "hold-released")):
        key = layout.hold_key(prefix, "H-1", state)
        version = vault.head(key)
        assert version is not None and version.version_id is not None
        lock = vault.lock_of(key, version.version_id)
        assert lock is not None and (lock.mode, lock.until) == ("COMPLIANCE", until)
        [(_, vouching)] = [found for found in audit_trail(vault, prefix, action=action)
                           if found[1]["hold_id"] == "H-1"]
        assert (vouching["key"], vouching["sha256"]) == (key, hashlib.sha256(vault.get_bytes(key)).hexdigest())
    [listed] = list_holds(vault, prefix)
    assert (listed.hold_id, listed.active, listed.recordings) == ("H-1", False, [seeded.sid])
    assert registry_findings(vault, prefix) == []


def test_records_no_entry_vouches_for_are_ignored_and_reported(vault, prefix) -> None:
    held, other = seed(vault, prefix=prefix), seed(vault, prefix=prefix)
    now = datetime.now(UTC)
    set_hold(vault, prefix, Selector((held.sid,)), reason="matter 2", actor="counsel", now=now, hold_id="H-A")
    forged = {
        "holds/H-A/released.json": b'{"hold_id":"H-A","at":"%s"}' % now.isoformat().encode(),
        "holds/x/released.json": b'{"hold_id":"H-A"}',
        "holds/H-F/set.json": b'{"hold_id":"H-F","at":"%s","recordings":["%s"]}' % (
            now.isoformat().encode(), other.sid.encode()),
        "holds/H-G/set.json": b"not json",
    }
    for key, body in forged.items():
        vault.put_bytes(prefix + key, body, content_type="application/json")

    [active] = list_holds(vault, prefix)
    assert (active.hold_id, active.active) == ("H-A", True)  # no forged release counts, no forged hold
    found = {f.evidence["key"].removeprefix(prefix): f for f in registry_findings(vault, prefix)}
    assert set(found) == set(forged)
    assert {f.kind for f in found.values()} == {"forged-hold-record"}
    assert (found["holds/x/released.json"].subject, found["holds/x/released.json"].evidence["would_expose"]) == (
        "H-A", [held.sid])
    assert "filed under 'x'" in found["holds/x/released.json"].problem
    assert found["holds/H-A/released.json"].evidence["would_expose"] == [held.sid]
    assert found["holds/H-F/set.json"].evidence["would_hold"] == [other.sid]
    # The forged release took H-A's key: the real release is refused, and H-A stays active.
    with pytest.raises(HoldError, match="its release record was forged"):
        release_hold(vault, prefix, "H-A", reason="closed", actor="counsel", now=datetime.now(UTC))
    assert [h.hold_id for h in list_holds(vault, prefix) if h.active] == ["H-A"]
    assert vault.legal_hold(held.media_key)


def test_a_version_over_a_vouched_record_is_ignored_and_reported(vault, prefix) -> None:
    seeded = seed(vault, prefix=prefix)
    set_hold(vault, prefix, Selector((seeded.sid,)), reason="matter 3", actor="counsel", now=datetime.now(UTC),
             hold_id="H-V")
    key = layout.hold_key(prefix, "H-V", "set")
    vault.put_bytes(key, b'{"hold_id":"H-V","recordings":[]}', content_type="application/json", create_only=False)

    [hold] = list_holds(vault, prefix)
    assert hold.recordings == [seeded.sid]  # the original, not what was stacked over it
    [finding] = registry_findings(vault, prefix)
    assert (finding.subject, finding.problem) == ("H-V", "a later version or delete marker over a registry record")
    assert len(finding.evidence["later"]) == 1


def test_a_release_drops_the_legal_hold_only_of_recordings_the_hold_recorded_holding(vault, prefix) -> None:
    held, unrecorded = seed(vault, prefix=prefix), seed(vault, prefix=prefix)
    hold, _ = set_hold(vault, prefix, Selector((held.sid,)), reason="matter 4", actor="counsel",
                       now=datetime.now(UTC) - timedelta(seconds=1))
    # A hold that lists a recording whose chain never recorded it held (a set that stopped half-way):
    # that recording's legal hold was put there by someone else and is left alone.
    vault.set_legal_hold(unrecorded.media_key, True)
    write_record(vault, prefix, "set", {**hold.record(), "hold_id": "H-half", "recordings": [unrecorded.sid],
                                        "dates": {unrecorded.sid: unrecorded.date}},
                 retention=None, actor="counsel")

    _, released, kept = release_hold(vault, prefix, "H-half", reason="done", actor="counsel", now=datetime.now(UTC))

    assert released == [] and kept == {unrecorded.sid: ["no `held` entry of H-half in its audit chain"]}
    assert vault.legal_hold(unrecorded.media_key)
