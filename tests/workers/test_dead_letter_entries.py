"""Dead-lettering and replaying a recording's event are entries in that recording's audit chain."""

from __future__ import annotations

import redis

from recvault.audit.append import read_chain
from recvault.workers.dead_letters import DeadLetters


def test_a_dead_letter_and_its_replay_are_in_the_recordings_chain(archive_env, redis_url) -> None:
    sid = "RE" + "4" * 32
    letters = DeadLetters(redis.Redis.from_url(redis_url), archive_env.store)
    letter = letters.add(f"{sid}:completed", "recvault.archive_recording", {"RecordingSid": sid},
                         reason="permanent", error="IntegrityFailed: not adopted", attempts=1)
    letters.replay(letter, lambda task, payload: None)
    entries, _, unreadable = read_chain(archive_env.store, "", sid)
    assert unreadable == []
    assert [(e.seq, e.action) for e in entries] == [(1, "dead-lettered"), (2, "dead-letter-replayed")]
    assert entries[0].details["reason"] == "permanent" and entries[1].details["letter_id"] == f"{sid}:completed"
    assert entries[1].prev == entries[0].sha256


def test_a_letter_about_no_recording_touches_no_chain(archive_env, redis_url) -> None:
    letters = DeadLetters(redis.Redis.from_url(redis_url), archive_env.store)
    letters.add("price-sweep:2026-11-30", "recvault.price_sweep", {}, reason="permanent", error="x", attempts=1)
    assert list(archive_env.store.list_keys("audit/")) == []
