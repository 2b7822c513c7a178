#!/usr/bin/env python3
"""Check a copy of a recvault archive's audit trail with nothing but Python's standard library.

    python3 verify_seals.py DIR [--witness FILE] [--key-file FILE [--since TIME]]

DIR holds the bucket's `audit/` folder as `aws s3 sync s3://BUCKET/PREFIX/audit/ DIR/audit/` leaves
it. Recomputed here: each seal's count and Merkle root from its leaves, the chain of seals (each
holds the SHA-256 of the previous seal's bytes), each sealed file's SHA-256, and each audit chain's
numbering and links. With a witness (JSON lines kept apart from the bucket), each record must match
the seal it names. With the audit key (RECVAULT_AUDIT_KEY, in a file), each entry stamped from
--since (RECVAULT_AUDIT_KEY_SINCE) on must carry its MAC. One line per problem, then a summary;
exit 0 clean, 1 problems, 2 usage.
The formats are those of recvault.audit.chain, restated here so that an auditor needs no recvault.
"""

from __future__ import annotations

import argparse
import hashlib
import hmac
import json
import re
import sys
from datetime import datetime, timezone
from pathlib import Path


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


UTC = timezone.utc  # noqa: UP017 -- datetime.UTC is 3.11+; an auditor may run an older Python
SEAL_GENESIS = sha256_hex(b"recvault-seal-genesis")
LEGACY_SEAL = re.compile(r"audit/seals/date=(\d{4}-\d{2}-\d{2})\.json")
PERIOD_SEAL = re.compile(r"audit/seals/date=(\d{4}-\d{2}-\d{2})/(\d{6})\.json")
ENTRY_NAME = re.compile(r"(\d{6,})\.json")
# A key as stored may carry the deployment's prefix before `audit/`; the copy starts at `audit/`.
IN_COPY = re.compile(r"(?:^|/)(audit/.+)$")


def merkle_root(leaves: list[tuple[str, str]]) -> str:
    """RFC 6962's shape: leaf = SHA-256(0x00 key 0x00 sha), node = SHA-256(0x01 left right), odd node carried up."""
    level = [hashlib.sha256(b"\x00" + key.encode() + b"\x00" + digest.encode()).digest()
             for key, digest in sorted(leaves)]
    if not level:
        return sha256_hex(b"")
    while len(level) > 1:
        paired = [hashlib.sha256(b"\x01" + level[i] + level[i + 1]).digest() for i in range(0, len(level) - 1, 2)]
        level = paired + ([level[-1]] if len(level) % 2 else [])
    return level[0].hex()


def instant(value: object) -> datetime | None:
    """A period start as a seal writes it (ISO 8601 text or epoch seconds), in UTC."""
    try:
        moment = datetime.fromtimestamp(value, UTC) if isinstance(value, (int, float)) else \
            datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except (TypeError, ValueError, OverflowError):
        return None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def entry_order(path: Path) -> tuple[int, str]:
    """Entries by number (a name's digits may outgrow six), anything else after them."""
    named = ENTRY_NAME.fullmatch(path.name)
    return (int(named[1]), "") if named else (sys.maxsize, path.name)


def mac_problem(entry: dict, key: bytes, since: datetime | None) -> str | None:
    """Why an entry lacks the MAC recvault gives it: HMAC-SHA256 of its line without `mac`, keys sorted."""
    stamped = instant(entry.get("at"))
    if since is not None and stamped is not None and stamped < since:
        return None
    unsigned = {name: value for name, value in entry.items() if name != "mac"}
    line = (json.dumps(unsigned, separators=(",", ":"), sort_keys=True) + "\n").encode()
    expected = hmac.new(key, line, hashlib.sha256).hexdigest()
    if hmac.compare_digest(str(entry.get("mac", "")).encode(), expected.encode()):
        return None
    return "no valid MAC under the audit key: recvault did not write this entry"


class Check:
    def __init__(self, root: Path, key: bytes | None = None, since: datetime | None = None) -> None:
        self.root = root
        self.key, self.since = key, since
        self.problems: list[str] = []
        self.seals: dict[str, tuple[bytes, dict, datetime | None]] = {}  # key → (bytes, parsed, period start)
        self.order: list[str] = []  # seal keys by period start
        self.counts = {"seals": 0, "leaves": 0, "chains": 0, "entries": 0}

    def problem(self, where: str, what: str) -> None:
        self.problems.append(f"{where}: {what}")

    def file(self, key: str) -> bytes | None:
        found = IN_COPY.search(key)
        if found is None or ".." in Path(found[1]).parts:
            return None
        path = self.root / found[1]
        return path.read_bytes() if path.is_file() else None

    def seal_chain(self) -> None:
        found = []
        for path in sorted((self.root / "audit" / "seals").rglob("*")):
            key = path.relative_to(self.root).as_posix()
            if path.is_dir():
                continue
            body = path.read_bytes()
            try:
                seal = json.loads(body)
                leaves = [(str(k), str(d)) for k, d in seal["leaves"]]
            except (ValueError, KeyError, TypeError):
                self.problem(key, "not a seal")
                continue
            if legacy := LEGACY_SEAL.fullmatch(key):
                start = instant(legacy[1])
                if seal.get("date") != legacy[1]:
                    self.problem(key, f"names day {seal.get('date')!r}, its key says {legacy[1]}")
            elif period := PERIOD_SEAL.fullmatch(key):
                start = instant(seal.get("period_start"))
                named = datetime.strptime(period[1] + period[2], "%Y-%m-%d%H%M%S").replace(tzinfo=UTC)
                if start != named:
                    self.problem(key, f"period_start {seal.get('period_start')!r} is not the one its key names")
                start = start or named
            else:
                self.problem(key, "not a seal's key")
                continue
            self.seals[key] = (body, seal, start)
            found.append((start, key, body, seal, leaves))
        prev = SEAL_GENESIS
        for _, key, body, seal, leaves in sorted(found, key=lambda f: (f[0] or datetime.min.replace(tzinfo=UTC), f[1])):
            self.order.append(key)
            self.counts["seals"] += 1
            self.counts["leaves"] += len(leaves)
            if seal.get("count") != len(leaves):
                self.problem(key, f"count {seal.get('count')} but {len(leaves)} leaves")
            if merkle_root(leaves) != seal.get("root"):
                self.problem(key, "Merkle root does not match its leaves")
            if seal.get("prev_seal") != prev:
                self.problem(key, "prev_seal is not the SHA-256 of the seal before it"
                             + (" (the first seal's should be the genesis)" if prev == SEAL_GENESIS else ""))
            prev = sha256_hex(body)
            for leaf_key, digest in leaves:
                data = self.file(leaf_key)
                if data is None:
                    self.problem(leaf_key, f"sealed in {key} but missing from the copy")
                elif sha256_hex(data) != digest:
                    self.problem(leaf_key, f"SHA-256 differs from the one sealed in {key}")

    def chains(self) -> None:
        folder = self.root / "audit" / "chains"
        for chain_dir in sorted(p for p in folder.iterdir() if p.is_dir()) if folder.is_dir() else []:
            chain, prev = chain_dir.name, sha256_hex(f"recvault-audit-genesis:{chain_dir.name}".encode())
            self.counts["chains"] += 1
            for position, path in enumerate(sorted(chain_dir.iterdir(), key=entry_order), start=1):
                key = path.relative_to(self.root).as_posix()
                named = ENTRY_NAME.fullmatch(path.name)
                if named is None or int(named[1]) != position:
                    self.problem(key, f"expected entry {position:06d}.json here: an entry is missing or misnamed")
                    break  # every later link is off by the gap; one line says it
                body = path.read_bytes()
                self.counts["entries"] += 1
                try:
                    entry = json.loads(body)
                    problems = [(entry["seq"] != position, f"holds seq {entry['seq']!r}, its key says {position}"),
                                (entry["chain"] != chain, f"belongs to chain {entry['chain']!r}"),
                                (entry["prev"] != prev, "prev is not the SHA-256 of the entry before it" + (
                                    " (the first's should be the chain's genesis)" if position == 1 else ""))]
                    if self.key is not None and (forged := mac_problem(entry, self.key, self.since)):
                        problems.append((True, forged))
                except (ValueError, KeyError, TypeError):
                    problems = [(True, "not an audit entry")]
                for failed, what in problems:
                    if failed:
                        self.problem(key, what)
                prev = sha256_hex(body)

    def witness(self, lines: list[str]) -> None:
        witnessed: set[str] = set()
        for number, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
                key = str(record["key"])
            except (ValueError, KeyError, TypeError):
                self.problem(f"witness line {number}", "not a witness record")
                continue
            key = found[1] if (found := IN_COPY.search(key)) else key
            if key not in self.seals:
                self.problem(key, f"witnessed (line {number}) but missing from the copy")
                continue
            witnessed.add(key)
            body, seal, start = self.seals[key]
            if record.get("sha256") != sha256_hex(body):
                self.problem(key, f"SHA-256 differs from the witness's (line {number})")
            for field in ("root", "prev_seal"):
                if record.get(field) != seal.get(field):
                    self.problem(key, f"{field} differs from the witness's (line {number})")
            if "period_start" in record and instant(record["period_start"]) != start:
                self.problem(key, f"period_start differs from the witness's (line {number})")
        # A seal the witness skipped, before the last one it holds, is one the sealer did not write;
        # seals after it may be newer than the witness's copy.
        last = max((self.order.index(key) for key in witnessed), default=-1)
        for key in self.order[:last]:
            if key not in witnessed:
                self.problem(key, "in the copy but not in the witness, which holds later seals")
        self.counts["unwitnessed"] = len(self.order) - last - 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("dir", type=Path, help="a folder holding the bucket's audit/ folder")
    parser.add_argument("--witness", type=Path, help="the seal witness: one JSON line per seal")
    parser.add_argument("--key-file", type=Path, help="a file holding the audit key: check each entry's MAC")
    parser.add_argument("--since", type=instant, help="entries stamped before this ISO 8601 time need no MAC")
    args = parser.parse_args(argv)
    root = args.dir.parent if args.dir.name == "audit" else args.dir
    if not (root / "audit").is_dir():
        print(f"verify_seals: {args.dir} holds no audit/ folder", file=sys.stderr)
        return 2
    try:
        witness = args.witness.read_text().splitlines() if args.witness else None
    except OSError as error:
        print(f"verify_seals: cannot read the witness: {error}", file=sys.stderr)
        return 2
    try:
        key = args.key_file.read_text().strip().encode() if args.key_file else None
    except OSError as error:
        print(f"verify_seals: cannot read the key: {error}", file=sys.stderr)
        return 2
    check = Check(root, key, args.since)
    check.seal_chain()
    check.chains()
    if witness is not None:
        check.witness(witness)
    for line in check.problems:
        print(line)
    counts = check.counts
    print(f"{counts['seals']} seal(s) over {counts['leaves']} file(s), {counts['chains']} chain(s) of "
          f"{counts['entries']} entries" + (f", {counts['unwitnessed']} seal(s) newer than the witness"
                                             if witness is not None else "")
          + f": {len(check.problems)} problem(s)")
    return 1 if check.problems else 0


if __name__ == "__main__":
    sys.exit(main())
