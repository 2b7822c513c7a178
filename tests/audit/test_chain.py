"""The chain and seal arithmetic: links, numbering, Merkle roots, the seal chain (pure, no I/O)."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime, timedelta

from recvault.audit import chain

WHEN = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)


def build(name: str, actions: list[str]) -> list[chain.Entry]:
    entries, prev = [], chain.genesis(name)
    for seq, action in enumerate(actions, start=1):
        body = chain.entry_bytes(name, seq, prev, WHEN, "host:1", action, {"n": seq})
        key = f"audit/chains/{name}/{seq:06d}.json"
        entries.append(chain.Entry.parse(key, body))
        prev = entries[-1].sha256
    return entries


def test_an_intact_chain_has_no_problem_and_links_each_entry_to_the_previous_bytes() -> None:
    entries = build("RE1", ["archived", "price-updated", "deleted-from-twilio"])
    assert chain.chain_problems("RE1", entries, [1, 2, 3]) == []
    assert entries[0].prev == chain.genesis("RE1") != chain.genesis("RE2")
    assert entries[1].prev == entries[0].sha256


def test_a_removed_entry_is_a_gap() -> None:
    entries = build("RE1", ["a", "b", "c"])
    problems = chain.chain_problems("RE1", [entries[0], entries[2]], [1, 3])
    assert problems == ["entry 2 missing: the next key found is seq 3"]


def test_an_edited_entry_breaks_the_next_link() -> None:
    entries = build("RE1", ["a", "b", "c"])
    body = chain.entry_bytes("RE1", 2, entries[1].prev, WHEN, "host:1", "b", {"n": 999})
    edited = chain.Entry.parse(entries[1].key, body)
    problems = chain.chain_problems("RE1", [entries[0], edited, entries[2]], [1, 2, 3])
    assert len(problems) == 1 and problems[0].startswith(f"{entries[2].key}: prev ")


def test_reordered_entries_break_numbering_and_links() -> None:
    entries = build("RE1", ["a", "b", "c"])
    swapped = [chain.Entry.parse(entries[0].key, _bytes(entries[1])), chain.Entry.parse(entries[1].key,
                                                                                         _bytes(entries[0]))]
    problems = chain.chain_problems("RE1", [*swapped, entries[2]], [1, 2, 3])
    assert any("holds seq 2, its key says 1" in p for p in problems)
    assert any("prev" in p for p in problems)


def test_an_entry_moved_from_another_chain_is_caught_by_its_genesis_and_name() -> None:
    foreign = build("RE2", ["a"])
    problems = chain.chain_problems("RE1", foreign, [1])
    assert any("belongs to chain 'RE2'" in p for p in problems) and any("prev" in p for p in problems)


def _bytes(entry: chain.Entry) -> bytes:
    return chain.entry_bytes(entry.chain, entry.seq, entry.prev, datetime.fromisoformat(entry.at), entry.actor,
                             entry.action, entry.details)


def test_the_merkle_root_follows_rfc_6962_and_ignores_leaf_order() -> None:
    def leaf(key: str, digest: str) -> bytes:
        return hashlib.sha256(b"\x00" + key.encode() + b"\x00" + digest.encode()).digest()

    a, b, c = ("k/a", "1" * 64), ("k/b", "2" * 64), ("k/c", "3" * 64)
    assert chain.merkle_root([]) == hashlib.sha256(b"").hexdigest()
    assert chain.merkle_root([a]) == leaf(*a).hex()
    ab = hashlib.sha256(b"\x01" + leaf(*a) + leaf(*b)).digest()
    assert chain.merkle_root([b, a]) == ab.hex()
    # An odd node is carried up unpaired.
    assert chain.merkle_root([c, a, b]) == hashlib.sha256(b"\x01" + ab + leaf(*c)).hexdigest()
    assert chain.merkle_root([a, b, ("k/c", "4" * 64)]) != chain.merkle_root([a, b, c])


def test_seals_chain_to_their_predecessor_and_prove_their_leaves() -> None:
    leaves = [("k/b", "2" * 64), ("k/a", "1" * 64)]
    start = datetime(2026, 12, 7, 13, 0, tzinfo=UTC)
    until = datetime(2027, 12, 7, 13, 20, tzinfo=UTC)
    first = chain.seal_bytes(start, 3600, leaves, chain.seal_genesis(), WHEN, until)
    # One JSON line, keys sorted, leaves sorted by key, times in UTC ISO 8601.
    assert first == (
        '{"count":2,"leaves":[["k/a","' + "1" * 64 + '"],["k/b","' + "2" * 64 + '"]],'
        '"period_seconds":3600,"period_start":"2026-12-07T13:00:00+00:00","prev_seal":"' + chain.seal_genesis()
        + '","retain_until":"2027-12-07T13:20:00+00:00","root":"' + chain.merkle_root(leaves)
        + '","sealed_at":"2026-11-24T12:00:00+00:00"}\n').encode()
    assert chain.seal_genesis() == hashlib.sha256(b"recvault-seal-genesis").hexdigest()
    parsed = chain.Seal.parse(first)
    assert (parsed.period_start, parsed.period_end, parsed.retain_until, parsed.day_seal) == (
        start, start + timedelta(hours=1), until, False)
    assert chain.seal_problems(parsed, chain.seal_genesis(), start) == []
    second = chain.Seal.parse(chain.seal_bytes(parsed.period_end, 3600, [], chain.sha256_hex(first), WHEN, until))
    assert chain.seal_problems(second, chain.sha256_hex(first), parsed.period_end) == []
    assert chain.seal_problems(second, chain.seal_genesis(), parsed.period_end) == [
        "seal of 2026-12-07T14:00:00+00:00: prev_seal does not match the previous seal's SHA-256"]
    # Filed under another period's key.
    assert chain.seal_problems(second, chain.sha256_hex(first), start) == [
        "seal of 2026-12-07T13:00:00+00:00 says its period starts 2026-12-07T14:00:00+00:00"]
    tampered = chain.Seal.parse(json.dumps({**json.loads(first), "leaves": [["k/a", "1" * 64]]}).encode())
    problems = chain.seal_problems(tampered, chain.seal_genesis(), start)
    assert "seal of 2026-12-07T13:00:00+00:00: count 2 but 1 leaves" in problems
    assert "seal of 2026-12-07T13:00:00+00:00: Merkle root does not match its leaves" in problems


def test_a_day_seal_of_an_older_release_reads_as_a_period_of_a_day() -> None:
    body = (json.dumps({"date": "2026-11-24", "count": 0, "root": chain.merkle_root([]), "leaves": [],
                        "prev_seal": chain.seal_genesis(), "sealed_at": "2026-11-25T00:20:00+00:00"},
                       separators=(",", ":"), sort_keys=True) + "\n").encode()
    seal = chain.Seal.parse(body)
    midnight = datetime(2026, 11, 24, tzinfo=UTC)
    assert (seal.period_start, seal.period_seconds, seal.day_seal, seal.retain_until) == (midnight, 86400, True, None)
    assert chain.seal_problems(seal, chain.seal_genesis(), midnight) == []
    # The same content is the same seal, whenever and for however long it was locked.
    again = chain.Seal.parse(body.replace(b"00:20:00", b"00:25:00"))
    assert again.content() == seal.content() and again.sha256 != seal.sha256


def test_periods_fall_on_the_days_grid_and_never_cross_midnight() -> None:
    at = datetime(2026, 12, 7, 13, 42, 5, tzinfo=UTC)
    assert chain.period_holding(at, 3600) == datetime(2026, 12, 7, 13, tzinfo=UTC)
    assert chain.period_holding(at, 900) == datetime(2026, 12, 7, 13, 30, tzinfo=UTC)
    assert chain.period_end(datetime(2026, 12, 7, 23, tzinfo=UTC), 3600) == datetime(2026, 12, 8, tzinfo=UTC)
    # After the period setting changed, the first period runs to the new grid's next boundary.
    assert chain.period_end(datetime(2026, 12, 7, 13, 5, tzinfo=UTC), 3600) == datetime(2026, 12, 7, 14, tzinfo=UTC)
    crossing = chain.Seal.parse(chain.seal_bytes(datetime(2026, 12, 7, 23, tzinfo=UTC), 7200, [], "0" * 64, WHEN,
                                                 None))
    assert chain.seal_problems(crossing, "0" * 64, datetime(2026, 12, 7, 23, tzinfo=UTC)) == [
        "seal of 2026-12-07T23:00:00+00:00: a period of 7200 s does not end by the next midnight (UTC)"]
