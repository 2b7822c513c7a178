"""Seals per period on real SeaweedFS: what a period holds, when it is sealed, and seals an insider
rewrote, hid or placed first — caught by check_seals and never chained onto by the sealer."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

import pytest

from recvault import layout
from recvault.audit import chain
from recvault.audit.append import read_chain
from recvault.audit.history import recording_history
from recvault.audit.seal import GRACE, LEDGER_FLUSH_INTERVAL, SealConflict, list_seals, seal_pending, seal_through
from recvault.audit.verify.trail import TrailResult, check_chains, check_seals, check_unsealed_index
from recvault.audit.write import write_audit, write_system_audit
from recvault.errors import ConfigurationError
from recvault.settings import load_settings
from recvault.storage.base import Retention
from recvault.storage.s3 import S3Store
from tests.fixtures.sealing import seal_all

SID = "RE" + "a" * 32
OTHER = "RE" + "b" * 32
HOUR = timedelta(hours=1)
NOT_RECORDED = "no `period-sealed` entry of the system chain records this seal: the sealer did not write it"


def past_period(hours: int = 3) -> datetime:
    """The start of the (hourly) period that began `hours` ago: long finished, and sealable."""
    return chain.period_holding(datetime.now(UTC) - timedelta(hours=hours), 3600)


def opened(store: S3Store, first: datetime) -> None:
    """A system entry two hours before `first`: sealing starts on its day, so the period before `first` is sealable."""
    write_audit(store, "", chain.system_chain(f"{first - 2 * HOUR:%Y-%m-%d}"), "policy-loaded", {}, None,
                first - 2 * HOUR)


def days_from(start: datetime) -> list[str]:
    today = datetime.now(UTC).date()
    first = start.date()
    return [(first + timedelta(days=n)).isoformat() for n in range((today - first).days + 1)]


def kinds(result: TrailResult) -> set[tuple[str, str]]:
    return {(f.kind, f.subject) for f in result.findings}


def leaves_of(store: S3Store, start: datetime) -> list[list[str]]:
    return json.loads(store.get_bytes(layout.seal_key("", start)))["leaves"]


def row_of(store: S3Store, chain_name: str, seq: int, day: str) -> str:
    digest = chain.sha256_hex(store.get_bytes(layout.chain_key("", chain_name, seq)))
    return layout.index_key("", day, chain_name, seq, digest)


def test_a_period_holds_its_entries_their_index_rows_and_the_ledger_objects_that_appeared_in_it(s3_store) -> None:
    first = past_period(3)
    day = f"{first:%Y-%m-%d}"
    write_audit(s3_store, "", SID, "archived", {}, None, first + timedelta(minutes=5))
    write_audit(s3_store, "", SID, "price-updated", {}, None, first + timedelta(minutes=6))
    write_audit(s3_store, "", OTHER, "archived", {}, None, first + timedelta(minutes=65))  # the next period
    stale = [layout.index_key("", day, SID, 1, "f" * 64), layout.index_key("", day, SID, 7, "e" * 64)]
    for row in stale:
        s3_store.put_bytes(row, b"", content_type="application/octet-stream")
    ledger_key = layout.accepted_key("", f"{datetime.now(UTC):%Y-%m-%d}", "1-0")
    ledger_body = b'{"id":"1-0","sid":"' + SID.encode() + b'","status":"completed"}\n'
    s3_store.put_bytes(ledger_key, ledger_body, content_type="application/x-ndjson")

    sealed = seal_all(s3_store)

    assert leaves_of(s3_store, first) == sorted([
        [layout.chain_key("", SID, 1), chain.sha256_hex(s3_store.get_bytes(layout.chain_key("", SID, 1)))],
        [layout.chain_key("", SID, 2), chain.sha256_hex(s3_store.get_bytes(layout.chain_key("", SID, 2)))],
        [row_of(s3_store, SID, 1, day), chain.EMPTY_SHA256], [row_of(s3_store, SID, 2, day), chain.EMPTY_SHA256]])
    assert [key for key, _ in leaves_of(s3_store, first + HOUR)] == sorted(
        [layout.chain_key("", OTHER, 1), row_of(s3_store, OTHER, 1, f"{first + HOUR:%Y-%m-%d}")])
    # The ledger object appeared now: the current period's seal holds it, and no other seal does.
    current = chain.period_holding(datetime.now(UTC), 3600)
    holding = [s.period_start for s in sealed if [ledger_key, chain.sha256_hex(ledger_body)]
               in leaves_of(s3_store, s.period_start)]
    assert holding == [current]
    assert not any(row in json.dumps(leaves_of(s3_store, s.period_start)) for s in sealed for row in stale)
    # Nothing new: a second run seals nothing and changes nothing.
    before = [(found.key, len(found.versions.versions)) for found in list_seals(s3_store, "")]
    assert seal_all(s3_store) == []
    assert [(found.key, len(found.versions.versions)) for found in list_seals(s3_store, "")] == before
    result = TrailResult()
    coverage = check_seals(s3_store, "", days_from(first), result)
    assert result.findings == [] and coverage.sealed_until == current + HOUR
    assert coverage.leaves[ledger_key] == chain.sha256_hex(ledger_body)
    assert {r["key"] for r in coverage.roots} == {s.key for s in sealed}


def test_two_sealers_at_once_write_each_seal_once_and_agree(s3_store) -> None:
    first = past_period(3)
    write_audit(s3_store, "", SID, "archived", {}, None, first + timedelta(minutes=5))
    now = datetime.now(UTC)
    with ThreadPoolExecutor(2) as pool:
        runs = list(pool.map(lambda _: seal_pending(s3_store, "", 1, now), range(2)))
    by_key: dict[str, list] = {}
    for sealed in [*runs[0], *runs[1]]:
        by_key.setdefault(sealed.key, []).append(sealed)
    # Each seal written by one of them; where both sealed a period, they computed the same seal.
    assert all(sum(s.written for s in found) == 1 and len({s.sha256 for s in found}) == 1
               for found in by_key.values())
    assert sorted(by_key) == [found.key for found in list_seals(s3_store, "")]
    assert all(len(found.versions.versions) == 1 for found in list_seals(s3_store, ""))
    result = TrailResult()
    check_seals(s3_store, "", days_from(past_period(3)), result)
    assert result.findings == []


def test_a_period_is_sealed_once_the_ledger_flush_after_it_has_run(s3_store) -> None:
    assert GRACE == LEDGER_FLUSH_INTERVAL + timedelta(seconds=60) == timedelta(minutes=16)
    first = past_period(4)
    write_audit(s3_store, "", SID, "archived", {}, None, first + timedelta(minutes=5))
    end = first + HOUR
    assert all(s.period_start < first for s in seal_pending(s3_store, "", 1, end + GRACE - timedelta(seconds=1)))
    sealed = seal_pending(s3_store, "", 1, end + GRACE)
    assert [s.period_start for s in sealed] == [first] and sealed[0].count == 2


def attack_new_version(store: S3Store, key: str) -> None:
    """A plain PutObject (no If-None-Match): S3 stacks a version over the locked seal."""
    store._client.put_object(Bucket=store.bucket, Key=key, Body=b'{"forged":true}\n')


def attack_delete_marker(store: S3Store, key: str) -> None:
    """DeleteObject without a version: a delete marker hides the locked seal."""
    store._client.delete_object(Bucket=store.bucket, Key=key)


@pytest.mark.parametrize("attack", [attack_new_version, attack_delete_marker])
def test_a_seal_rewritten_or_hidden_is_caught_and_the_next_seal_links_to_its_original(s3_store, attack) -> None:
    first = past_period(3)
    write_audit(s3_store, "", SID, "archived", {}, None, first + timedelta(minutes=5))
    sealed = seal_through(s3_store, "", first, keep_days=1)
    head = sealed[-1]
    assert head.period_start == first
    attack(s3_store, head.key)

    result = TrailResult()
    check_seals(s3_store, "", days_from(first), result)
    assert ("replaced-seal", head.key) in kinds(result)

    [after] = seal_through(s3_store, "", first + HOUR, keep_days=1)
    assert json.loads(s3_store.get_bytes(after.key))["prev_seal"] == head.sha256  # the original's, not the forgery's
    reported = [e for e in read_chain(s3_store, "", chain.system_chain(f"{datetime.now(UTC):%Y-%m-%d}"))[0]
                if e.action == "seal-found-tampering"]
    assert [e.details["keys"] for e in reported] == [[head.key]]
    # The chain of seals still holds (links are checked on originals); only the attacked seal is reported.
    result = TrailResult()
    check_seals(s3_store, "", days_from(first), result)
    assert kinds(result) == {("replaced-seal", head.key)}


def test_a_forged_seal_placed_before_the_sealer_is_refused_and_its_period_reported_unsealed(s3_store) -> None:
    first = past_period(3)
    write_audit(s3_store, "", SID, "archived", {}, None, first + timedelta(minutes=5))
    opened(s3_store, first)
    [*_, head] = seal_through(s3_store, "", first - HOUR, keep_days=1)
    # The insider takes the next seal's key first: a seal that holds nothing, locked like a real one.
    until = datetime.now(UTC).replace(microsecond=0) + timedelta(days=1)
    forged = chain.seal_bytes(first, 3600, [], head.sha256, datetime.now(UTC), until)
    s3_store.put_bytes(layout.seal_key("", first), forged, content_type="application/json",
                       retention=Retention(mode="COMPLIANCE", until=until))

    with pytest.raises(SealConflict):
        seal_through(s3_store, "", first + HOUR, keep_days=1)
    assert [s.period_start for s in list_seals(s3_store, "")][-1] == first  # nothing chained onto it
    [conflict] = [e for e in read_chain(s3_store, "", chain.system_chain(f"{datetime.now(UTC):%Y-%m-%d}"))[0]
                  if e.action == "seal-conflict"]
    assert conflict.details["found_sha256"] == chain.sha256_hex(forged) != conflict.details["computed_sha256"]
    with pytest.raises(SealConflict):  # and it refuses every time, never chaining onto the forgery
        seal_through(s3_store, "", first + HOUR, keep_days=1)

    result = TrailResult()
    days = days_from(first)
    coverage = check_seals(s3_store, "", days, result)
    assert [(f.kind, f.subject, f.problem) for f in result.findings] == [
        ("replaced-seal", layout.seal_key("", first), NOT_RECORDED)]
    check_chains(s3_store, "", [SID], coverage, result, days=set(days))
    assert ("unsealed-entry", SID) in kinds(result)


def test_a_seal_not_locked_as_it_states_is_a_replaced_seal(s3_store) -> None:
    first = past_period(3)
    opened(s3_store, first)
    [*_, head] = seal_through(s3_store, "", first - HOUR, keep_days=1)
    until = datetime.now(UTC).replace(microsecond=0) + timedelta(days=1)
    unlocked = chain.seal_bytes(first, 3600, [], head.sha256, datetime.now(UTC), until)
    s3_store.put_bytes(layout.seal_key("", first), unlocked, content_type="application/json")
    shorter = chain.seal_bytes(first + HOUR, 3600, [], chain.sha256_hex(unlocked), datetime.now(UTC), until)
    s3_store.put_bytes(layout.seal_key("", first + HOUR), shorter, content_type="application/json",
                       retention=Retention(mode="COMPLIANCE", until=until - timedelta(hours=1)))
    result = TrailResult()
    check_seals(s3_store, "", days_from(first), result)
    problems = {(f.subject, f.problem) for f in result.findings if f.kind == "replaced-seal"}
    assert problems == {(layout.seal_key("", first), "the seal is not under COMPLIANCE retention"),
                        (layout.seal_key("", first + HOUR), "the seal's retain-until is not the date it states"),
                        (layout.seal_key("", first), NOT_RECORDED), (layout.seal_key("", first + HOUR), NOT_RECORDED)}


def test_a_missing_period_between_seals_is_a_missing_seal(s3_store) -> None:
    first = past_period(4)
    opened(s3_store, first)
    [*_, head] = seal_through(s3_store, "", first - HOUR, keep_days=1)
    until = datetime.now(UTC).replace(microsecond=0) + timedelta(days=1)
    skipping = chain.seal_bytes(first + HOUR, 3600, [], head.sha256, datetime.now(UTC), until)
    s3_store.put_bytes(layout.seal_key("", first + HOUR), skipping, content_type="application/json",
                       retention=Retention(mode="COMPLIANCE", until=until))
    result = TrailResult()
    check_seals(s3_store, "", days_from(first), result)
    assert {(f.kind, f.problem) for f in result.findings} == {
        ("missing-seal", f"no seal for {first.isoformat()} to {(first + HOUR).isoformat()}"),
        ("replaced-seal", NOT_RECORDED)}


def test_sealed_records_are_checked_at_their_original_version(s3_store) -> None:
    first = past_period(3)
    write_audit(s3_store, "", SID, "archived", {}, None, first + timedelta(minutes=5))
    write_audit(s3_store, "", SID, "price-updated", {}, None, first + timedelta(minutes=6))
    # An entry with a version stacked over it when the sealer runs is sealed at its original, and reported.
    rewritten = layout.chain_key("", SID, 2)
    original = s3_store.get_bytes(rewritten)
    s3_store._client.put_object(Bucket=s3_store.bucket, Key=rewritten, Body=b'{"rewritten":true}\n')
    seal_all(s3_store)
    assert [rewritten, chain.sha256_hex(original)] in leaves_of(s3_store, first)
    reported = [e.details["keys"] for e in read_chain(s3_store, "", chain.system_chain(
        f"{datetime.now(UTC):%Y-%m-%d}"))[0] if e.action == "seal-found-tampering"]
    assert reported == [[rewritten]]
    # Entry 1 is not locked: its only version can be deleted, and the seal shows it gone.
    removed = layout.chain_key("", SID, 1)
    [version] = [v for v in s3_store.list_versions(removed)]
    s3_store.delete_version(removed, version.version_id)

    days = days_from(first)
    result = TrailResult()
    coverage = check_seals(s3_store, "", days, result)
    check_chains(s3_store, "", [SID], coverage, result, days=set(days))
    check_unsealed_index(s3_store, "", days, result)
    found = {(f.kind, f.subject, f.problem) for f in result.findings}
    assert ("altered-sealed-entry", removed, "sealed, and its original version is gone") in found
    assert ("rewritten-entry", SID, "an audit entry was rewritten: a later version stands over it") in found
    assert not any(kind == "index-without-entry" for kind, _, _ in found)  # its period is sealed: the seal says it
    assert not any(subject == rewritten for kind, subject, _ in found if kind == "altered-sealed-entry")
    assert [e.key for e in result.entries_by_chain[SID]] == [rewritten]  # entry 1 is gone; 2 as first written


def test_an_entry_removed_before_its_period_is_sealed_is_found_through_the_index(s3_store) -> None:
    now = datetime.now(UTC)
    write_audit(s3_store, "", SID, "archived", {}, None, now)
    key = layout.chain_key("", SID, 1)
    [version] = list(s3_store.list_versions(key))
    s3_store.delete_version(key, version.version_id)
    result = TrailResult()
    days = [f"{now:%Y-%m-%d}"]
    check_seals(s3_store, "", days, result)
    check_unsealed_index(s3_store, "", days, result)
    assert kinds(result) == {("index-without-entry", key)}


def test_audit_show_says_which_entries_their_period_seal_holds(s3_store) -> None:
    first = past_period(3)
    write_audit(s3_store, "", SID, "archived", {}, None, first + timedelta(minutes=5))
    seal_through(s3_store, "", first, keep_days=1)
    write_audit(s3_store, "", SID, "price-updated", {}, None, datetime.now(UTC))
    steps = recording_history(s3_store, "", SID)
    assert [(s.action, s.sealed) for s in steps] == [("archived", "sealed"), ("price-updated", "not sealed yet")]


@pytest.mark.parametrize(("value", "allowed"), [(300, True), (3600, True), (86400, True), (299, False),
                                                 (7000, False), (172800, False)])
def test_the_seal_period_must_be_five_minutes_or_more_and_divide_a_day(value: int, allowed: bool) -> None:
    if allowed:
        assert load_settings(seal_period_seconds=value).seal_period_seconds == value
        return
    with pytest.raises(ConfigurationError) as refused:
        load_settings(seal_period_seconds=value)
    assert str(refused.value) == (f"RECVAULT_SEAL_PERIOD_SECONDS: {value} is not allowed: a number of seconds of at "
                                  "least 300 that divides 86400 (e.g. 300, 900, 1800, 3600, 21600, 86400)")


def test_sealing_goes_on_from_a_day_seal_of_an_older_release(s3_store) -> None:
    yesterday = (datetime.now(UTC) - timedelta(days=1)).date()
    midnight = datetime(yesterday.year, yesterday.month, yesterday.day, tzinfo=UTC)
    write_audit(s3_store, "", SID, "archived", {}, None, midnight + timedelta(hours=1))
    day_seal = (json.dumps({"date": yesterday.isoformat(), "count": 0, "root": chain.merkle_root([]), "leaves": [],
                            "prev_seal": chain.seal_genesis(), "sealed_at": datetime.now(UTC).isoformat()},
                           separators=(",", ":"), sort_keys=True) + "\n").encode()
    until = datetime.now(UTC).replace(microsecond=0) + timedelta(days=1)
    s3_store.put_bytes(layout.day_seal_key("", yesterday.isoformat()), day_seal, content_type="application/json",
                       retention=Retention(mode="COMPLIANCE", until=until))
    # As an older release's sealer recorded each day it sealed.
    write_system_audit(s3_store, "", "day-sealed", {"date": yesterday.isoformat(), "entries": 0,
                                                    "seal_sha256": chain.sha256_hex(day_seal)}, datetime.now(UTC))
    sealed = seal_through(s3_store, "", midnight + timedelta(days=1), keep_days=1)
    assert [s.period_start for s in sealed] == [midnight + timedelta(days=1)]
    assert json.loads(s3_store.get_bytes(sealed[0].key))["prev_seal"] == chain.sha256_hex(day_seal)
    result = TrailResult()
    days = [yesterday.isoformat()]
    coverage = check_seals(s3_store, "", days, result)
    check_chains(s3_store, "", [SID], coverage, result, days=set(days))
    # The day seal holds no leaf for the entry: read as a period of 86400 s, it covers it.
    assert kinds(result) == {("unsealed-entry", SID)}
    assert coverage.roots[0]["period_seconds"] == 86400
