"""How many times each event was put on the queue, read back from Redis's append-only file.

The private redis-server runs with `appendfsync always`, so its AOF is a complete, durable
log of every write, including the ones ingest's Lua script makes (Redis 7 logs a script's
effects). Counting first publications there needs no cooperation from the code under test
and survives every restart and kill: a task message is counted when it is pushed with
`retries == 0` (LPUSH; restores by kombu or recvault's heartbeat use RPUSH and are not counted).

With Sentinel the history is spread over several servers: each push is in the incremental
AOF of the master that took it, and again in those of the replicas it reached. A replica's
full resync rewrites its AOF, so the scenario copies every server's AOF directory before it
starts that server again; `read_histories` then counts distinct messages (delivery tags)
per event across all of them.
"""

from __future__ import annotations

import base64
import json
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from recvault.queue.celery_factory import ARCHIVE_TASK

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


def aof_files(redis_dir: Path, *, rewritten_ok: bool = False) -> list[Path]:
    """The incremental AOF files in manifest order; refuses a history cut by a rewrite.

    `rewritten_ok`: a replica's AOF is rewritten at each full resync; what its base holds came
    from a master whose own incremental files the caller reads.
    """
    manifest = redis_dir / "appendonlydir" / "appendonly.aof.manifest"
    if not manifest.exists():
        raise LedgerError(f"no AOF manifest in {redis_dir}")
    files = []
    for line in manifest.read_text().splitlines():
        fields = dict(zip(line.split()[::2], line.split()[1::2], strict=False))
        if fields.get("type") == "b" and fields.get("seq") != "1" and not rewritten_ok:
            raise LedgerError("the AOF was rewritten: the early history is gone")
        if fields.get("type") == "i":
            files.append(manifest.parent / fields["file"])
    return files


@dataclass(frozen=True)
class Push:
    """One first publication of an archive task: its event, message and when ingest queued it."""

    event: tuple[str, str]
    tag: str
    taken_at: float | None  # the unacked_index score ingest's script set; None for kombu's own pushes
    params: dict


def pushes(files: list[Path], queue: str) -> Iterator[Push]:
    """First publications of archive tasks onto `queue`, in the order the files hold them."""
    for path in files:
        for block in _transactions(path.read_bytes()):
            if any(c[0].upper() == b"HDEL" and c[1] == UNACKED_KEY for c in block):
                continue  # kombu putting an unacknowledged message back: not a new one
            scores = {c[3]: float(c[2]) for c in block if c[0].upper() == b"ZADD" and len(c) == 4}
            for command in block:
                # Publications are LPUSHed (ingest, recvault's writer, kombu); RPUSH puts a message
                # back at the front: kombu's restore and the heartbeat's, never a new publication.
                if command[0].upper() == b"LPUSH" and command[1] == queue.encode():
                    for message in command[2:]:
                        push = _first_publication(message, scores)
                        if push is not None:
                            yield push


def _first_publication(raw: bytes, scores: dict[bytes, float]) -> Push | None:
    envelope = json.loads(raw)
    headers = envelope.get("headers", {})
    if headers.get("task") != ARCHIVE_TASK or headers.get("retries", 0) != 0:
        return None
    args = json.loads(base64.b64decode(envelope["body"]))[0]
    params = args[0].get("params", {})
    event = (first_value(params.get("RecordingSid")), first_value(params.get("RecordingStatus")))
    tag = str(envelope.get("properties", {}).get("delivery_tag", ""))
    return Push(event, tag, scores.get(tag.encode()), params)


@dataclass
class QueueLedger:
    """First publications of archive tasks, per (RecordingSid, RecordingStatus)."""

    pushes: Counter = field(default_factory=Counter)
    params: dict[tuple[str, str], dict] = field(default_factory=dict)

    @classmethod
    def read(cls, redis_dir: Path, queue: str) -> QueueLedger:
        ledger = cls()
        for push in pushes(aof_files(redis_dir), queue):
            ledger.pushes[push.event] += 1
            ledger.params.setdefault(push.event, push.params)
        return ledger

    @classmethod
    def read_histories(cls, redis_dirs: list[Path], queue: str) -> QueueLedger:
        """Several servers' AOFs: an event counts once per distinct message, or more if one AOF repeats it."""
        ledger = cls()
        tags: dict[tuple[str, str], set[str]] = {}
        repeated: Counter = Counter()
        for redis_dir in redis_dirs:
            seen: Counter = Counter()
            for push in pushes(aof_files(redis_dir, rewritten_ok=True), queue):
                seen[(push.event, push.tag)] += 1
                tags.setdefault(push.event, set()).add(push.tag)
                ledger.params.setdefault(push.event, push.params)
            for (event, _), count in seen.items():
                repeated[event] = max(repeated[event], count)
        for event, distinct in tags.items():
            ledger.pushes[event] = max(len(distinct), repeated[event])
        return ledger


def first_value(value: object) -> str:
    """A parameter's value; the first one when it was repeated (as recvault reads it)."""
    return str(value[0] if isinstance(value, list) and value else value)
