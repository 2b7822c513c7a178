"""How many times each event was put on the queue, read back from Redis's append-only file.

The private redis-server runs with `appendfsync always`, so its AOF is a complete, durable
log of every write, including the ones ingest's Lua script makes (Redis 7 logs a script's
effects). Counting first publications there needs no cooperation from the code under test
and survives every restart and kill: a task message is counted when it is pushed with
`retries == 0`, except when kombu restores an unacknowledged message (the push then shares
a transaction with the HDEL from kombu's `unacked` hash).
"""

from __future__ import annotations

import base64
import json
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from recvault.queue.app import ARCHIVE_TASK

UNACKED_KEY = b"unacked"


class LedgerError(RuntimeError):
    """The AOF cannot give a complete history (it was rewritten, or is missing)."""


def _commands(data: bytes) -> Iterator[list[bytes]]:
    """RESP arrays of bulk strings, as Redis writes them to the AOF; a torn tail is ignored."""
    pos, end = 0, len(data)
    while pos < end:
        if data[pos:pos + 1] == b"#":  # an annotation line (aof-timestamp-enabled)
            pos = data.index(b"\r\n", pos) + 2
            continue
        line_end = data.find(b"\r\n", pos)
        if line_end < 0 or data[pos:pos + 1] != b"*":
            return
        count, pos, parts = int(data[pos + 1:line_end]), line_end + 2, []
        for _ in range(count):
            line_end = data.find(b"\r\n", pos)
            if line_end < 0:
                return
            length = int(data[pos + 1:line_end])
            start = line_end + 2
            if start + length + 2 > end:
                return
            parts.append(data[start:start + length])
            pos = start + length + 2
        yield parts


def _transactions(data: bytes) -> Iterator[list[list[bytes]]]:
    """Commands grouped as Redis applied them: a MULTI…EXEC block, or one command alone."""
    block: list[list[bytes]] | None = None
    for command in _commands(data):
        name = command[0].upper()
        if name == b"MULTI":
            block = []
        elif name == b"EXEC":
            yield block or []
            block = None
        elif block is not None:
            block.append(command)
        else:
            yield [command]


def aof_files(redis_dir: Path) -> list[Path]:
    """The incremental AOF files in manifest order; refuses a history cut by a rewrite."""
    manifest = redis_dir / "appendonlydir" / "appendonly.aof.manifest"
    if not manifest.exists():
        raise LedgerError(f"no AOF manifest in {redis_dir}")
    files = []
    for line in manifest.read_text().splitlines():
        fields = dict(zip(line.split()[::2], line.split()[1::2], strict=False))
        if fields.get("type") == "b" and fields.get("seq") != "1":
            raise LedgerError("the AOF was rewritten: the early history is gone")
        if fields.get("type") == "i":
            files.append(manifest.parent / fields["file"])
    return files


@dataclass
class QueueLedger:
    """First publications of archive tasks, per (RecordingSid, RecordingStatus)."""

    pushes: Counter = field(default_factory=Counter)
    params: dict[tuple[str, str], dict] = field(default_factory=dict)

    @classmethod
    def read(cls, redis_dir: Path, queue: str) -> QueueLedger:
        ledger = cls()
        for path in aof_files(redis_dir):
            for block in _transactions(path.read_bytes()):
                if any(c[0].upper() == b"HDEL" and c[1] == UNACKED_KEY for c in block):
                    continue  # kombu putting an unacknowledged message back: not a new one
                for command in block:
                    if command[0].upper() in (b"LPUSH", b"RPUSH") and command[1] == queue.encode():
                        for message in command[2:]:
                            ledger._count(message)
        return ledger

    def _count(self, raw: bytes) -> None:
        envelope = json.loads(raw)
        headers = envelope.get("headers", {})
        if headers.get("task") != ARCHIVE_TASK or headers.get("retries", 0) != 0:
            return
        args = json.loads(base64.b64decode(envelope["body"]))[0]
        params = args[0].get("params", {})
        event = (first_value(params.get("RecordingSid")), first_value(params.get("RecordingStatus")))
        self.pushes[event] += 1
        self.params.setdefault(event, params)


def first_value(value: object) -> str:
    """A parameter's value; the first one when it was repeated (as recvault reads it)."""
    return str(value[0] if isinstance(value, list) and value else value)
