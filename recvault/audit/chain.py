"""The audit trail's hash chains and seals: record format and arithmetic, no I/O.

A chain is a numbered run of entries (`seq` 1, 2, 3, …). Each entry carries the SHA-256
of the previous entry's exact bytes in `prev`; the first carries a genesis value derived
from the chain's name, so an entry cannot be moved into another chain. Removing, editing,
inserting or swapping entries breaks either the numbering or a `prev` link.

A seal covers one period of UTC time (RECVAULT_SEAL_PERIOD_SECONDS, a divisor of a day, so
a period never straddles midnight): the Merkle root over a leaf per record of the period
(leaf = the record's key and SHA-256, leaves sorted by key), plus the SHA-256 of the previous
seal, so a seal cannot be dropped or rewritten without breaking the next one. Seals written
before periods existed cover a whole day (`date`, no period fields) and are read as a period of
86400 s from that day's midnight. The tree follows RFC 6962's shape (0x00/0x01 prefixes keep
leaves and nodes apart, an odd node is carried up unpaired), which a third party can recompute
with any SHA-256 tool.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
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
                details: dict[str, Any], mac: str | None = None) -> bytes:
    """One entry as stored: one JSON line, keys sorted, so its hash is reproducible.

    `mac`: the entry's MAC (audit.signing), over these same bytes made without it; None: no `mac` field."""
    record = {"chain": chain, "seq": seq, "prev": prev, "at": at.isoformat(), "actor": actor,
              "action": action, "details": details}
    if mac is not None:
        record["mac"] = mac
    return _line(record)


def _line(record: dict[str, Any]) -> bytes:
    return (json.dumps(record, separators=(",", ":"), sort_keys=True, default=str) + "\n").encode()


@dataclass(frozen=True)
class Entry:
    """One stored entry, parsed, with the hash of its bytes, its MAC ("" when it has none) and the bytes
    that MAC is over: the entry as entry_bytes makes it without the `mac` field."""

    key: str
    seq: int
    prev: str
    at: str
    actor: str
    action: str
    details: dict[str, Any]
    chain: str
    sha256: str
    mac: str = ""
    unsigned: bytes = field(default=b"", repr=False)
    # When S3 stored the version read (its LastModified), for readers that listed it: not part of
    # the entry, and not in the writer's hands, unlike `at`.
    stored_at: datetime | None = None

    @property
    def day(self) -> str:
        return self.at[:10]

    @classmethod
    def parse(cls, key: str, body: bytes, stored_at: datetime | None = None) -> Entry:
        """ValueError when the bytes are not an entry; `stored_at`: when S3 stored them, if known."""
        try:
            record = json.loads(body)
            mac = record.pop("mac", None)
            return cls(key=key, seq=int(record["seq"]), prev=str(record["prev"]), at=str(record["at"]),
                       actor=str(record.get("actor", "")), action=str(record["action"]),
                       details=dict(record.get("details") or {}), chain=str(record["chain"]),
                       sha256=sha256_hex(body), mac=str(mac) if mac is not None else "", unsigned=_line(record),
                       stored_at=stored_at)
        except (ValueError, KeyError, TypeError, AttributeError) as error:
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


# A period is a divisor of a day, so its boundaries fall on the same instants every day.
DAY_SECONDS = 86400
# The SHA-256 a sealed index row (an empty object) has.
EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()


def period_end(start: datetime, period_seconds: int) -> datetime:
    """The end of the period that begins at `start`: the next multiple of `period_seconds` after
    `start`, counted from `start`'s UTC midnight (shorter than a period when `start` is off that
    grid, as after the period setting changed)."""
    start = start.astimezone(UTC)
    midnight = start.replace(hour=0, minute=0, second=0, microsecond=0)
    offset = int((start - midnight).total_seconds())
    return midnight + timedelta(seconds=(offset // period_seconds + 1) * period_seconds)


def period_holding(at: datetime, period_seconds: int) -> datetime:
    """The start of the period (on the day's grid) that holds `at`."""
    at = at.astimezone(UTC)
    midnight = at.replace(hour=0, minute=0, second=0, microsecond=0)
    offset = int((at - midnight).total_seconds())
    return midnight + timedelta(seconds=offset - offset % period_seconds)


def seal_bytes(period_start: datetime, period_seconds: int, leaves: Sequence[tuple[str, str]], prev_seal: str,
               sealed_at: datetime, retain_until: datetime | None) -> bytes:
    """The seal of one period, as stored: one JSON line, keys sorted, times in UTC ISO 8601."""
    ordered = sorted(leaves)
    record = {"period_start": period_start.astimezone(UTC).isoformat(), "period_seconds": period_seconds,
              "count": len(ordered), "root": merkle_root(ordered), "prev_seal": prev_seal,
              "leaves": [list(leaf) for leaf in ordered], "sealed_at": sealed_at.astimezone(UTC).isoformat(),
              "retain_until": retain_until.astimezone(UTC).isoformat() if retain_until else None}
    return (json.dumps(record, separators=(",", ":"), sort_keys=True) + "\n").encode()


@dataclass(frozen=True)
class Seal:
    """One stored seal, parsed (a period seal, or a day seal of the older form), with the hash of its bytes."""

    period_start: datetime
    period_seconds: int
    count: object  # as stored: seal_problems says when it is not the number of leaves
    root: str
    prev_seal: str
    leaves: tuple[tuple[str, str], ...]
    sealed_at: str
    retain_until: datetime | None
    day_seal: bool
    sha256: str

    @property
    def period_end(self) -> datetime:
        return self.period_start + timedelta(seconds=self.period_seconds)

    def content(self) -> tuple[object, ...]:
        """What two seals of one period must agree on to be the same seal (not when, or for how long, it was locked)."""
        return self.period_start, self.period_seconds, self.root, self.prev_seal, self.leaves

    @classmethod
    def parse(cls, body: bytes) -> Seal:
        """ValueError when the bytes are not a seal."""
        try:
            record = json.loads(body)
            leaves = tuple((str(key), str(digest)) for key, digest in record["leaves"])
            if "period_start" in record:
                start = _utc(datetime.fromisoformat(str(record["period_start"])))
                seconds, day_seal = int(record["period_seconds"]), False
            else:
                start = datetime.fromisoformat(str(record["date"])).replace(tzinfo=UTC)
                seconds, day_seal = DAY_SECONDS, True
            until = record.get("retain_until")
            return cls(period_start=start, period_seconds=seconds, count=record.get("count"),
                       root=str(record.get("root")), prev_seal=str(record.get("prev_seal")), leaves=leaves,
                       sealed_at=str(record.get("sealed_at", "")),
                       retain_until=_utc(datetime.fromisoformat(str(until))) if until else None,
                       day_seal=day_seal, sha256=sha256_hex(body))
        except (ValueError, KeyError, TypeError, AttributeError) as error:
            raise ValueError(f"not a seal ({error})") from None


def _utc(moment: datetime) -> datetime:
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def seal_problems(seal: Seal, prev_seal: str, named_start: datetime) -> list[str]:
    """What is wrong with one parsed seal, given the hash its predecessor has (or the genesis) and the
    period start its key names."""
    name = f"seal of {named_start.astimezone(UTC).isoformat()}"
    problems = []
    if seal.period_start != named_start:
        problems.append(f"{name} says its period starts {seal.period_start.isoformat()}")
    midnight = seal.period_start.replace(hour=0, minute=0, second=0, microsecond=0)
    if seal.period_seconds <= 0 or seal.period_end > midnight + timedelta(seconds=DAY_SECONDS):
        problems.append(f"{name}: a period of {seal.period_seconds} s does not end by the next midnight (UTC)")
    if seal.count != len(seal.leaves):
        problems.append(f"{name}: count {seal.count} but {len(seal.leaves)} leaves")
    if merkle_root(seal.leaves) != seal.root:
        problems.append(f"{name}: Merkle root does not match its leaves")
    link = seal_link_problem(seal, prev_seal, named_start)
    return problems + ([link] if link else [])


def seal_link_problem(seal: Seal, prev_seal: str, named_start: datetime) -> str | None:
    """Whether the seal links to its predecessor (`prev_seal`: that seal's SHA-256, or the genesis)."""
    if seal.prev_seal == prev_seal:
        return None
    return f"seal of {named_start.astimezone(UTC).isoformat()}: prev_seal does not match the previous seal's SHA-256"
