"""A crash-safe local spool for callbacks accepted while Redis is unreachable or slow.

SQLite in WAL mode with `synchronous=FULL` fsyncs every commit, so a row written before
the 2xx answer survives a crash of the process or the machine. Rows keep their arrival
order (`id`), a dedup key makes spooling the same event twice a no-op, and several ingest
processes may share one file (SQLite serialises their writers).

A row is in one of two states:

* *waiting* (`held_history` NULL): not known to be on the queue; drained in order, and new
  callbacks join behind it;
* *held*: on the broker's master, which no replica has acknowledged yet. It names the
  master's replication history and the offset the master had reached once it took the row,
  is released once a replica holds that offset of that history, and becomes waiting again
  if the master's history changes (a failover, a restart) before that.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

from recvault.audit.ledger import row_from_message
from recvault.queue.writer import Outgoing

_SCHEMA = """
CREATE TABLE IF NOT EXISTS spool (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    dedup_key TEXT NOT NULL UNIQUE,
    task_id TEXT NOT NULL,
    message TEXT NOT NULL,
    spooled_at REAL NOT NULL DEFAULT ((julianday('now') - 2440587.5) * 86400.0)
)
"""
# Columns of held rows, added to a spool file written before they existed when it is opened:
# the master's replication ID and offset, and when the row's dedup key last got a whole window.
_HELD_COLUMNS = {"held_history": "TEXT", "held_offset": "INTEGER", "refreshed_at": "REAL"}
# Waiting rows in order, held rows by history; held rows by when their dedup key was renewed.
_INDEXES = (
    "CREATE INDEX IF NOT EXISTS spool_state ON spool (held_history, id)",
    "CREATE INDEX IF NOT EXISTS spool_renewal ON spool (held_history, refreshed_at) WHERE held_history IS NOT NULL",
)


class Spool:
    """Ordered, durable, deduplicated storage of outgoing queue messages."""

    def __init__(self, path: Path, *, max_bytes: int | None = None) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        # Used only from the one hand-off thread of this process.
        self._db = sqlite3.connect(path, timeout=10, isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        with self._db:
            self._db.execute("BEGIN IMMEDIATE")  # several processes may open one file at once
            self._db.execute(_SCHEMA)
            columns = {row[1] for row in self._db.execute("PRAGMA table_info(spool)")}
            for name, kind in _HELD_COLUMNS.items():
                if name not in columns:
                    self._db.execute(f"ALTER TABLE spool ADD COLUMN {name} {kind}")
            for index in _INDEXES:
                self._db.execute(index)
        if max_bytes is not None:
            # Past this size a write fails as on a full disk (SQLITE_FULL), and is handled so.
            page_size = self._db.execute("PRAGMA page_size").fetchone()[0]
            self._db.execute(f"PRAGMA max_page_count = {max(max_bytes // page_size, 8)}")

    def append(self, batch: list[Outgoing]) -> None:
        """Durably add messages as waiting (fsync'd on return); ones already spooled are ignored."""
        with self._db:
            self._db.execute("BEGIN IMMEDIATE")
            self._db.executemany(
                "INSERT OR IGNORE INTO spool (dedup_key, task_id, message) VALUES (?, ?, ?)",
                [(item.dedup_key, item.task_id, item.message) for item in batch],
            )

    def hold(self, batch: list[Outgoing], history: str, offset: int, fresh: list[bool], *, at: float) -> int:
        """Durably keep copies of messages the master took at `offset` of `history`; how many are new.

        `fresh`: per message, whether the master set its dedup key when the batch was sent, at
        `at` (a whole window from then); the others count as due for renewal.
        """
        with self._db:
            self._db.execute("BEGIN IMMEDIATE")
            cursor = self._db.executemany(
                "INSERT OR IGNORE INTO spool (dedup_key, task_id, message, held_history, held_offset, refreshed_at) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                [(item.dedup_key, item.task_id, item.message, history, offset, at if new else 0.0)
                 for item, new in zip(batch, fresh, strict=True)],
            )
            return cursor.rowcount

    def mark_held(self, ids: list[int], history: str, offset: int, fresh: list[bool], *, at: float) -> None:
        """Waiting rows the master has now taken at `offset` of `history`, not yet acknowledged (see hold)."""
        with self._db:
            self._db.execute("BEGIN IMMEDIATE")
            self._db.executemany(
                "UPDATE spool SET held_history = ?, held_offset = ?, refreshed_at = ? WHERE id = ?",
                [(history, offset, at if new else 0.0, row_id) for row_id, new in zip(ids, fresh, strict=True)],
            )

    def oldest(self, limit: int) -> list[tuple[int, Outgoing]]:
        """The next waiting messages to drain, oldest first."""
        rows = self._db.execute(
            "SELECT id, dedup_key, message, task_id FROM spool WHERE held_history IS NULL ORDER BY id LIMIT ?",
            (limit,),
        ).fetchall()
        # Only callbacks are spooled: each keeps its ledger row, derived again from its message.
        return [(row[0], Outgoing(row[1], row[2], row[3], ledger=row_from_message(row[2]))) for row in rows]

    def remove(self, ids: list[int]) -> None:
        """Forget messages that are now on the queue."""
        with self._db:
            self._db.execute("BEGIN IMMEDIATE")
            self._db.executemany("DELETE FROM spool WHERE id = ?", [(i,) for i in ids])

    def release(self, history: str, offset: int) -> int:
        """Forget held copies a replica now holds: taken on `history` at `offset` or before; how many."""
        with self._db:
            self._db.execute("BEGIN IMMEDIATE")
            return self._db.execute(
                "DELETE FROM spool WHERE held_history = ? AND held_offset <= ?", (history, offset)
            ).rowcount

    def displace(self, history: str) -> int:
        """Held copies taken on another history than `history` wait again, to be published again."""
        with self._db:
            self._db.execute("BEGIN IMMEDIATE")
            return self._db.execute(
                "UPDATE spool SET held_history = NULL, held_offset = NULL, refreshed_at = NULL "
                "WHERE held_history IS NOT NULL AND held_history != ?", (history,)
            ).rowcount

    def stale(self, history: str, before: float, limit: int) -> list[tuple[int, str]]:
        """(id, dedup key) of copies held on `history` whose dedup key last got its window before `before`."""
        return self._db.execute(
            "SELECT id, dedup_key FROM spool WHERE held_history = ? AND refreshed_at < ? LIMIT ?",
            (history, before, limit),
        ).fetchall()

    def refreshed(self, ids: list[int], at: float) -> None:
        with self._db:
            self._db.execute("BEGIN IMMEDIATE")
            self._db.executemany("UPDATE spool SET refreshed_at = ? WHERE id = ?", [(at, i) for i in ids])

    def depth(self) -> int:
        """Waiting messages: not known to be on the queue."""
        return self._db.execute("SELECT count(*) FROM spool WHERE held_history IS NULL").fetchone()[0]

    def held(self) -> int:
        """Copies of messages on the master that no replica has acknowledged yet."""
        return self._db.execute("SELECT count(*) FROM spool WHERE held_history IS NOT NULL").fetchone()[0]

    def close(self) -> None:
        self._db.close()
