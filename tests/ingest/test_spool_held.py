"""The spool's two states: waiting rows (not known to be queued) and held copies (queued on a master
no replica has acknowledged), and the moves between them."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

from recvault.ingest.spool import Spool
from recvault.queue.writer import Outgoing


def _item(n: int) -> Outgoing:
    return Outgoing(f"RE{n}:completed", f"message-{n}", f"task-{n}")


def _waiting(spool: Spool) -> list[str]:
    return [item.message for _, item in spool.oldest(100)]


def test_held_copies_are_not_drained_and_leave_once_their_offset_is_covered(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "s.sqlite3")
    spool.append([_item(1)])
    assert spool.hold([_item(2), _item(3)], "history-a", 100, [True, True], at=time.time()) == 2
    assert spool.hold([_item(3), _item(4)], "history-a", 180, [True, True], at=time.time()) == 1  # 3 had its copy
    assert (spool.depth(), spool.held()) == (1, 3)
    assert _waiting(spool) == ["message-1"]  # held copies are on the queue already
    assert spool.release("history-b", 1000) == 0  # another history's WAIT covers nothing of this one
    assert spool.release("history-a", 150) == 2  # only what the master took up to offset 150
    assert (spool.depth(), spool.held()) == (1, 1)
    spool.close()


def test_copies_of_a_history_the_master_left_wait_again_in_arrival_order(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "s.sqlite3")
    spool.hold([_item(1), _item(2)], "history-a", 100, [True, True], at=time.time())
    spool.append([_item(3)])  # arrived while the broker was unreachable, after 1 and 2
    spool.hold([_item(4)], "history-b", 10, [True], at=time.time())
    assert spool.displace("history-b") == 2
    assert _waiting(spool) == ["message-1", "message-2", "message-3"]
    rows = spool.oldest(2)
    spool.mark_held([row_id for row_id, _ in rows], "history-b", 20, [False, True], at=time.time())
    assert _waiting(spool) == ["message-3"] and spool.held() == 3
    spool.close()


def test_copies_due_for_a_renewed_dedup_key(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "s.sqlite3")
    spool.hold([_item(1), _item(2)], "history-a", 100, [True, False], at=time.time())  # 2's key was set before
    spool.hold([_item(3)], "history-b", 100, [False], at=time.time())
    due = spool.stale("history-a", time.time() - 1800, 10)
    assert [key for _, key in due] == ["RE2:completed"]
    spool.refreshed([row_id for row_id, _ in due], time.time())
    assert spool.stale("history-a", time.time() - 1800, 10) == []
    assert [key for _, key in spool.stale("history-a", time.time() + 1, 10)] == ["RE1:completed", "RE2:completed"]
    spool.close()


def test_a_spool_file_from_before_held_copies_opens_with_its_rows_waiting(tmp_path: Path) -> None:
    path = tmp_path / "s.sqlite3"
    db = sqlite3.connect(path)
    db.execute("CREATE TABLE spool (id INTEGER PRIMARY KEY AUTOINCREMENT, dedup_key TEXT NOT NULL UNIQUE, "
               "task_id TEXT NOT NULL, message TEXT NOT NULL, spooled_at REAL NOT NULL DEFAULT 0)")
    db.execute("INSERT INTO spool (dedup_key, task_id, message) VALUES ('RE1:completed', 'task-1', 'message-1')")
    db.commit()
    db.close()
    spool = Spool(path)
    assert (spool.depth(), spool.held()) == (1, 0)
    assert _waiting(spool) == ["message-1"]
    spool.close()
    again = Spool(path)  # opening it again changes nothing
    assert (again.depth(), again.held()) == (1, 0)
    again.close()
