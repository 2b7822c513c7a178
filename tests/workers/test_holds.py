"""Legal holds on SeaweedFS with Object Lock: every object held, a registry, and releases that respect other holds."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from recvault import layout
from recvault.storage.base import Retention
from recvault.workers.hold_selector import BadSelector, Selector, parse_label
from recvault.workers.holds import HoldError, list_holds, release_hold, set_hold
from recvault.workers.recording_objects import audit_keys, locate
from tests.workers.compliance_seed import seed, sid


def held_keys(store, seeded) -> dict[str, bool]:
    """Legal hold of the recording's media, document, event and `archived` audit record."""
    located = locate(store, "", seeded.sid)
    archived = [key for key in audit_keys(store, "", located) if key.endswith("-archived.json")]
    return {key: store.legal_hold(key) for key in [*located.keys, *archived]}


def audit_records(store, recording_sid: str, action: str) -> list[dict]:
    return [json.loads(store.get_bytes(key)) for key in store.list_keys(layout.AUDIT)
            if f"/{recording_sid}/" in key and key.endswith(f"-{action}.json")]


def test_a_hold_by_recording_sid_holds_every_object_and_is_registered_and_audited(s3_store) -> None:
    one, other = seed(s3_store), seed(s3_store)
    now = datetime.now(UTC)

    hold, chosen = set_hold(s3_store, "", Selector((one.sid,)), reason="matter 2026-17", actor="dana", now=now)

    assert [r.sid for r in chosen] == [one.sid]
    states = held_keys(s3_store, one)
    assert len(states) == 4 and all(states.values()), states  # media, document, event, audit record
    assert not any(held_keys(s3_store, other).values())
    (listed,) = list_holds(s3_store, "")
    assert (listed.hold_id, listed.actor, listed.reason, listed.recordings) == (hold.hold_id, "dana",
                                                                                 "matter 2026-17", [one.sid])
    assert listed.at == now.isoformat() and listed.active
    (record,) = audit_records(s3_store, one.sid, "held")
    assert (record["hold_id"], record["reason"], record["actor"]) == (hold.hold_id, "matter 2026-17", "dana")
    assert record["selector"] == {"recording_sids": [one.sid]}


def test_a_hold_covers_every_version_and_its_release_frees_every_version(s3_store) -> None:
    seeded = seed(s3_store)
    first = s3_store.head(seeded.metadata_key)
    s3_store.put_bytes(seeded.metadata_key, s3_store.get_bytes(seeded.metadata_key), create_only=False,
                       content_type="application/json")  # a later version, as a price refresh writes
    hold, _ = set_hold(s3_store, "", Selector((seeded.sid,)), reason="r", actor="a", now=datetime.now(UTC))
    assert s3_store.legal_hold(seeded.metadata_key, version_id=first.version_id)
    release_hold(s3_store, "", hold.hold_id, reason="r", actor="a", now=datetime.now(UTC))
    assert not s3_store.legal_hold(seeded.metadata_key, version_id=first.version_id)
    assert not any(held_keys(s3_store, seeded).values())


def test_holds_select_by_call_account_label_and_date_range(s3_store) -> None:
    account = sid("AC")
    by_call = seed(s3_store, date="2026-11-20")
    acme_a = seed(s3_store, date="2026-11-21", account_sid=account, labels={"tenant": "acme"})
    acme_b = seed(s3_store, date="2026-11-23", account_sid=account, labels={"tenant": "acme", "consent": "no"})
    late = seed(s3_store, date="2026-11-25", labels={"tenant": "other"})

    def chosen(selector: Selector) -> set[str]:
        return {r.sid for r in set_hold(s3_store, "", selector, reason="r", actor="a", now=datetime.now(UTC))[1]}

    assert chosen(Selector(call_sid=by_call.call_sid)) == {by_call.sid}
    assert chosen(Selector(account_sid=account)) == {acme_a.sid, acme_b.sid}
    assert chosen(Selector(labels={"tenant": "acme", "consent": "no"})) == {acme_b.sid}
    assert chosen(Selector(date_from="2026-11-24")) == {late.sid}
    assert all(held_keys(s3_store, late).values())
    assert len(list_holds(s3_store, "")) == 4


def test_releasing_one_of_two_holds_keeps_the_legal_hold_until_the_last_is_released(s3_store) -> None:
    both, only_first = seed(s3_store, labels={"case": "x"}), seed(s3_store, labels={"case": "x"})
    first, _ = set_hold(s3_store, "", Selector(labels={"case": "x"}), reason="case x", actor="a", now=datetime.now(UTC))
    second, _ = set_hold(s3_store, "", Selector((both.sid,)), reason="regulator", actor="b", now=datetime.now(UTC))

    _, released, kept = release_hold(s3_store, "", first.hold_id, reason="case closed", actor="c",
                                     now=datetime.now(UTC))

    assert released == [only_first.sid] and kept == {both.sid: [second.hold_id]}
    assert all(held_keys(s3_store, both).values())
    assert not any(held_keys(s3_store, only_first).values())
    assert [h.hold_id for h in list_holds(s3_store, "") if h.active] == [second.hold_id]
    (record,) = audit_records(s3_store, both.sid, "released")
    assert record["legal_hold_kept_by"] == [second.hold_id] and record["actor"] == "c"

    release_hold(s3_store, "", second.hold_id, reason="done", actor="c", now=datetime.now(UTC))
    assert not any(held_keys(s3_store, both).values())
    with pytest.raises(HoldError, match="already released"):
        release_hold(s3_store, "", second.hold_id, reason="again", actor="c", now=datetime.now(UTC))
    with pytest.raises(HoldError, match="no hold"):
        release_hold(s3_store, "", "H-unknown", reason="?", actor="c", now=datetime.now(UTC))


def test_selectors_refuse_what_names_nothing_or_names_it_wrongly() -> None:
    with pytest.raises(BadSelector, match="name the recordings"):
        Selector()
    with pytest.raises(BadSelector, match="--call"):
        Selector(call_sid="CA123")
    with pytest.raises(BadSelector, match="before --from"):
        Selector(date_from="2026-11-02", date_to="2026-11-01")
    with pytest.raises(BadSelector, match="name=value"):
        parse_label("tenant")
    assert parse_label("a=b=c") == ("a", "b=c")
    selector = Selector(labels={"tenant": "acme"}, date_from="2026-11-01")
    assert selector.matches("RE1", "2026-11-02", {"labels": {"tenant": "acme"}})
    assert not selector.matches("RE1", "2026-10-31", {"labels": {"tenant": "acme"}})
    assert not selector.matches("RE1", "2026-11-02", {})  # a document without labels (older archive)
    assert Selector.from_dict(selector.as_dict()) == selector


def test_releasing_a_hold_leaves_the_legal_hold_the_policy_itself_decided(s3_store) -> None:
    seeded = seed(s3_store, lock=Retention(legal_hold=True), rule="litigation-hold")
    hold, _ = set_hold(s3_store, "", Selector((seeded.sid,)), reason="r", actor="a", now=datetime.now(UTC))
    _, released, kept = release_hold(s3_store, "", hold.hold_id, reason="r", actor="a", now=datetime.now(UTC))
    assert released == [] and kept == {seeded.sid: ["policy rule litigation-hold"]}
    assert all(held_keys(s3_store, seeded).values())
