"""The chain and seal arithmetic: links, numbering, Merkle roots, the seal chain (pure, no I/O)."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime

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
    import json

    leaves = [("k/a", "1" * 64), ("k/b", "2" * 64)]
    first = chain.seal_bytes("2026-11-24", leaves, chain.seal_genesis(), WHEN)
    assert chain.seal_problems("2026-11-24", json.loads(first), chain.seal_genesis()) == []
    second = json.loads(chain.seal_bytes("2026-11-25", [], chain.sha256_hex(first), WHEN))
    assert chain.seal_problems("2026-11-25", second, chain.sha256_hex(first)) == []
    assert chain.seal_problems("2026-11-25", second, chain.seal_genesis()) == [
        "seal of 2026-11-25: prev_seal does not match the previous seal's SHA-256"]
    tampered = {**json.loads(first), "leaves": [["k/a", "1" * 64]]}
    problems = chain.seal_problems("2026-11-24", tampered, chain.seal_genesis())
    assert "seal of 2026-11-24: count 2 but 1 leaves" in problems
    assert "seal of 2026-11-24: Merkle root does not match its leaves" in problems
