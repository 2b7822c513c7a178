"""A crash-safe local spool for callbacks accepted while Redis is unreachable or slow.

SQLite in WAL mode with `synchronous=FULL` fsyncs every commit, so a row written before
the 2xx answer survives a crash of the process or the machine. Rows keep their arrival
order (`id`), a dedup key makes spooling the same event twice a no-op, and several ingest
processes may share one file (SQLite serialises their writers).
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


class Spool:
    """Ordered, durable, deduplicated storage of outgoing queue messages."""

    def __init__(self, path: Path, *, max_bytes: int | None = None) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        # Used only from the one hand-off thread of this process.
        self._db = sqlite3.connect(path, timeout=10, isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.execute(_SCHEMA)
        if max_bytes is not None:
            # Past this size a write fails as on a full disk (SQLITE_FULL), and is handled so.
            page_size = self._db.execute("PRAGMA page_size").fetchone()[0]
            self._db.execute(f"PRAGMA max_page_count = {max(max_bytes // page_size, 8)}")

    def append(self, batch: list[Outgoing]) -> None:
        """Durably add messages (fsync'd on return); ones already spooled are ignored."""
        with self._db:
            self._db.execute("BEGIN IMMEDIATE")
            self._db.executemany(
                "INSERT OR IGNORE INTO spool (dedup_key, task_id, message) VALUES (?, ?, ?)",
                [(item.dedup_key, item.task_id, item.message) for item in batch],
            )

    def oldest(self, limit: int) -> list[tuple[int, Outgoing]]:
        """The next messages to drain, oldest first."""
        rows = self._db.execute(
            "SELECT id, dedup_key, message, task_id FROM spool ORDER BY id LIMIT ?", (limit,)
        ).fetchall()
        # Only callbacks are spooled: each keeps its ledger row, derived again from its message.
        return [(row[0], Outgoing(row[1], row[2], row[3], ledger=row_from_message(row[2]))) for row in rows]

    def remove(self, ids: list[int]) -> None:
        """Forget messages that are now on the queue."""
        with self._db:
            self._db.execute("BEGIN IMMEDIATE")
            self._db.executemany("DELETE FROM spool WHERE id = ?", [(i,) for i in ids])

    def depth(self) -> int:
        return self._db.execute("SELECT count(*) FROM spool").fetchone()[0]

    def close(self) -> None:
        self._db.close()
