"""Legal holds on SeaweedFS with Object Lock: every object held, a registry, and releases that respect other holds."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from recvault.compliance.hold_selector import BadSelector, Selector, parse_label
from recvault.compliance.holds import HoldError, list_holds, release_hold, set_hold
from recvault.compliance.recording_objects import locate
from recvault.storage.base import Retention
from tests.compliance.seed import audit_trail, seed, sid


def held_keys(store, prefix, seeded) -> dict[str, bool]:
    """Legal hold of the recording's media, document, event and `archived` audit record."""
    located = locate(store, prefix, seeded.sid)
    archived = [key for key, _ in audit_trail(store, prefix, seeded.sid, "archived")]
    return {key: store.legal_hold(key) for key in [*located.keys, *archived]}


def audit_records(store, prefix, recording_sid: str, action: str) -> list[dict]:
    return [record for _, record in audit_trail(store, prefix, recording_sid, action)]


def test_a_hold_by_recording_sid_holds_every_object_and_is_registered_and_audited(vault, prefix) -> None:
    one, other = seed(vault, prefix=prefix), seed(vault, prefix=prefix)
    now = datetime.now(UTC)

    hold, chosen = set_hold(vault, prefix, Selector((one.sid,)), reason="matter 2026-17", actor="dana", now=now)

    assert [r.sid for r in chosen] == [one.sid]
    states = held_keys(vault, prefix, one)
    assert len(states) == 4 and all(states.values()), states  # media, document, event, audit record
    assert not any(held_keys(vault, prefix, other).values())
    (listed,) = list_holds(vault, prefix)
    assert (listed.hold_id, listed.actor, listed.reason, listed.recordings) == (hold.hold_id, "dana",
                                                                                 "matter 2026-17", [one.sid])
    assert listed.at == now.isoformat() and listed.active
    (record,) = audit_records(vault, prefix, one.sid, "held")
    assert (record["hold_id"], record["reason"], record["actor"]) == (hold.hold_id, "matter 2026-17", "dana")
    assert record["selector"] == {"recording_sids": [one.sid]}


def test_a_hold_covers_every_version_and_its_release_frees_every_version(vault, prefix) -> None:
    seeded = seed(vault, prefix=prefix)
    first = vault.head(seeded.metadata_key)
    vault.put_bytes(seeded.metadata_key, vault.get_bytes(seeded.metadata_key), create_only=False,
                       content_type="application/json")  # a later version, as a price refresh writes
    hold, _ = set_hold(vault, prefix, Selector((seeded.sid,)), reason="r", actor="a", now=datetime.now(UTC))
    assert vault.legal_hold(seeded.metadata_key, version_id=first.version_id)
    release_hold(vault, prefix, hold.hold_id, reason="r", actor="a", now=datetime.now(UTC))
    assert not vault.legal_hold(seeded.metadata_key, version_id=first.version_id)
    assert not any(held_keys(vault, prefix, seeded).values())


def test_holds_select_by_call_account_label_and_date_range(vault, prefix) -> None:
    account = sid("AC")
    by_call = seed(vault, prefix=prefix, date="2026-11-20")
    acme_a = seed(vault, prefix=prefix, date="2026-11-21", account_sid=account, labels={"tenant": "acme"})
    acme_b = seed(vault, prefix=prefix, date="2026-11-23", account_sid=account,
                  labels={"tenant": "acme", "consent": "no"})
    late = seed(vault, prefix=prefix, date="2026-11-25", labels={"tenant": "other"})

    def chosen(selector: Selector) -> set[str]:
        return {r.sid for r in set_hold(vault, prefix, selector, reason="r", actor="a", now=datetime.now(UTC))[1]}

    assert chosen(Selector(call_sid=by_call.call_sid)) == {by_call.sid}
    assert chosen(Selector(account_sid=account)) == {acme_a.sid, acme_b.sid}
    assert chosen(Selector(labels={"tenant": "acme", "consent": "no"})) == {acme_b.sid}
    assert chosen(Selector(date_from="2026-11-24")) == {late.sid}
    assert all(held_keys(vault, prefix, late).values())
    assert len(list_holds(vault, prefix)) == 4


def test_releasing_one_of_two_holds_keeps_the_legal_hold_until_the_last_is_released(vault, prefix) -> None:
    both, only_first = (seed(vault, prefix=prefix, labels={"case": "x"}) for _ in range(2))
    first, _ = set_hold(vault, prefix, Selector(labels={"case": "x"}), reason="case x", actor="a",
                        now=datetime.now(UTC))
    second, _ = set_hold(vault, prefix, Selector((both.sid,)), reason="regulator", actor="b", now=datetime.now(UTC))

    _, released, kept = release_hold(vault, prefix, first.hold_id, reason="case closed", actor="c",
                                     now=datetime.now(UTC))

    assert released == [only_first.sid] and kept == {both.sid: [second.hold_id]}
    assert all(held_keys(vault, prefix, both).values())
    assert not any(held_keys(vault, prefix, only_first).values())
    assert [h.hold_id for h in list_holds(vault, prefix) if h.active] == [second.hold_id]
    (record,) = audit_records(vault, prefix, both.sid, "released")
    assert record["legal_hold_kept_by"] == [second.hold_id] and record["actor"] == "c"

    release_hold(vault, prefix, second.hold_id, reason="done", actor="c", now=datetime.now(UTC))
    assert not any(held_keys(vault, prefix, both).values())
    with pytest.raises(HoldError, match="already released"):
        release_hold(vault, prefix, second.hold_id, reason="again", actor="c", now=datetime.now(UTC))
    with pytest.raises(HoldError, match="no hold"):
        release_hold(vault, prefix, "H-unknown", reason="?", actor="c", now=datetime.now(UTC))


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


def test_releasing_a_hold_leaves_the_legal_hold_the_policy_itself_decided(vault, prefix) -> None:
    seeded = seed(vault, prefix=prefix, lock=Retention(legal_hold=True), rule="litigation-hold")
    hold, _ = set_hold(vault, prefix, Selector((seeded.sid,)), reason="r", actor="a", now=datetime.now(UTC))
    _, released, kept = release_hold(vault, prefix, hold.hold_id, reason="r", actor="a", now=datetime.now(UTC))
    assert released == [] and kept == {seeded.sid: ["policy rule litigation-hold"]}
    assert all(held_keys(vault, prefix, seeded).values())


@pytest.mark.parametrize("hold_id", ["", "..", "a/b", "../H-A", "x" * 65, "sp ace"])
def test_a_hold_id_that_cannot_name_its_folder_is_refused_before_anything_is_written(vault, prefix, hold_id) -> None:
    with pytest.raises(HoldError, match="a hold id is 1-64 letters"):
        set_hold(vault, prefix, Selector(("RE" + "0" * 32,)), reason="r", actor="a", now=datetime.now(UTC),
                 hold_id=hold_id)
    assert list_holds(vault, prefix) == []
