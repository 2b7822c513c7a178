"""The audit trail's hash chains and daily seals: record format and arithmetic, no I/O.

A chain is a numbered run of entries (`seq` 1, 2, 3, …). Each entry carries the SHA-256
of the previous entry's exact bytes in `prev`; the first carries a genesis value derived
from the chain's name, so an entry cannot be moved into another chain. Removing, editing,
inserting or swapping entries breaks either the numbering or a `prev` link.

A seal covers one UTC day: the Merkle root over a leaf per entry written that day
(leaf = the entry's key and SHA-256, leaves sorted by key), plus the previous day's seal
hash, so a seal cannot be dropped or rewritten without breaking the next one. The tree
follows RFC 6962's shape (0x00/0x01 prefixes keep leaves and nodes apart, an odd node is
carried up unpaired), which a third party can recompute with any SHA-256 tool.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

# Chains of actions that belong to no one recording (policy loaded, lifecycle written,
# purge run, seal written) are one per UTC day: `system-2026-11-24`.
SYSTEM = "system"
SEAL_GENESIS_LABEL = "recvault-seal-genesis"


def system_chain(day: str) -> str:
    return f"{SYSTEM}-{day}"


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def genesis(chain: str) -> str:
    """The `prev` of a chain's first entry: bound to the chain's name."""
    return sha256_hex(f"recvault-audit-genesis:{chain}".encode())


def seal_genesis() -> str:
    """The `prev_seal` of the very first seal."""
    return sha256_hex(SEAL_GENESIS_LABEL.encode())


def entry_bytes(chain: str, seq: int, prev: str, at: datetime, actor: str, action: str,
                details: dict[str, Any]) -> bytes:
    """One entry as stored: one JSON line, keys sorted, so its hash is reproducible."""
    record = {"chain": chain, "seq": seq, "prev": prev, "at": at.isoformat(), "actor": actor,
              "action": action, "details": details}
    return (json.dumps(record, separators=(",", ":"), sort_keys=True, default=str) + "\n").encode()


@dataclass(frozen=True)
class Entry:
    """One stored entry, parsed, with the hash of its bytes."""

    key: str
    seq: int
    prev: str
    at: str
    actor: str
    action: str
    details: dict[str, Any]
    chain: str
    sha256: str

    @property
    def day(self) -> str:
        return self.at[:10]

    @classmethod
    def parse(cls, key: str, body: bytes) -> Entry:
        """ValueError when the bytes are not an entry."""
        try:
            record = json.loads(body)
            return cls(key=key, seq=int(record["seq"]), prev=str(record["prev"]), at=str(record["at"]),
                       actor=str(record.get("actor", "")), action=str(record["action"]),
                       details=dict(record.get("details") or {}), chain=str(record["chain"]),
                       sha256=sha256_hex(body))
        except (ValueError, KeyError, TypeError) as error:
            raise ValueError(f"{key}: not an audit entry ({error})") from None


def chain_problems(chain: str, entries: Sequence[Entry], expected_seqs: Sequence[int]) -> list[str]:
    """What is wrong with one chain: `entries` in key order, `expected_seqs` the numbers their keys carry."""
    problems = []
    prev = genesis(chain)
    for position, (entry, key_seq) in enumerate(zip(entries, expected_seqs, strict=True), start=1):
        if key_seq != position:
            problems.append(f"entry {position} missing: the next key found is seq {key_seq}")
            return problems  # every later link is off by the gap; one finding says it
        if entry.seq != key_seq:
            problems.append(f"{entry.key}: holds seq {entry.seq}, its key says {key_seq}")
        if entry.chain != chain:
            problems.append(f"{entry.key}: belongs to chain {entry.chain!r}")
        if entry.prev != prev:
            problems.append(f"{entry.key}: prev {entry.prev[:16]}… does not match the previous entry's "
                            f"SHA-256 {prev[:16]}…")
        prev = entry.sha256
    return problems


def leaf_hash(key: str, entry_sha256: str) -> bytes:
    return hashlib.sha256(b"\x00" + key.encode() + b"\x00" + entry_sha256.encode()).digest()


def merkle_root(leaves: Iterable[tuple[str, str]]) -> str:
    """Root over (key, entry SHA-256) leaves, sorted by key; the SHA-256 of nothing for no leaves."""
    level = [leaf_hash(key, digest) for key, digest in sorted(leaves)]
    if not level:
        return sha256_hex(b"")
    while len(level) > 1:
        paired = [hashlib.sha256(b"\x01" + level[i] + level[i + 1]).digest() for i in range(0, len(level) - 1, 2)]
        if len(level) % 2:
            paired.append(level[-1])
        level = paired
    return level[0].hex()


def seal_bytes(day: str, leaves: Sequence[tuple[str, str]], prev_seal: str, sealed_at: datetime) -> bytes:
    """The seal of one day, as stored."""
    ordered = sorted(leaves)
    record = {"date": day, "count": len(ordered), "root": merkle_root(ordered), "prev_seal": prev_seal,
              "leaves": [list(leaf) for leaf in ordered], "sealed_at": sealed_at.isoformat()}
    return (json.dumps(record, separators=(",", ":"), sort_keys=True) + "\n").encode()


def seal_problems(day: str, seal: dict[str, Any], prev_seal: str) -> list[str]:
    """What is wrong with one parsed seal, given the hash its predecessor has (or the genesis)."""
    problems = []
    leaves = [(str(key), str(digest)) for key, digest in seal.get("leaves", [])]
    if seal.get("date") != day:
        problems.append(f"seal of {day} names day {seal.get('date')!r}")
    if seal.get("count") != len(leaves):
        problems.append(f"seal of {day}: count {seal.get('count')} but {len(leaves)} leaves")
    if merkle_root(leaves) != seal.get("root"):
        problems.append(f"seal of {day}: Merkle root does not match its leaves")
    if seal.get("prev_seal") != prev_seal:
        problems.append(f"seal of {day}: prev_seal does not match the previous seal's SHA-256")
    return problems
