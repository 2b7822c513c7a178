"""The chained audit trail on real SeaweedFS: appends, races, daily seals; the ledger on real Redis."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

import pytest
import redis

from recvault import layout
from recvault.audit import chain, ledger
from recvault.audit.append import append, read_chain
from recvault.audit.ledger_flush import flush_accepted
from recvault.audit.seal import GRACE, seal_pending
from recvault.audit.write import write_audit, write_system_audit
from recvault.compliance.policy import Policy
from recvault.errors import AlreadyExists
from recvault.queue import kombu_redis
from recvault.queue.celery_factory import create_celery
from recvault.queue.writer import QueueWriter, build_message
from recvault.settings import Settings
from recvault.storage.base import Retention

SID = "RE" + "a" * 32
LOCK = Retention(mode="GOVERNANCE", until=datetime.now(UTC) + timedelta(days=1))


def test_entries_chain_in_order_and_are_locked_like_the_recording(s3_store) -> None:
    now = datetime.now(UTC)
    write_audit(s3_store, "", SID, "archived", {"sha256": "0" * 64}, LOCK, now)
    write_audit(s3_store, "", SID, "price-updated", {"price": "-0.005"}, LOCK, now, actor="someone")
    entries, seqs, unreadable = read_chain(s3_store, "", SID)
    assert [e.action for e in entries] == ["archived", "price-updated"] and seqs == [1, 2] and not unreadable
    assert chain.chain_problems(SID, entries, seqs) == []
    assert entries[1].actor == "someone" and ":" in entries[0].actor  # hostname:pid by default
    assert s3_store.head(entries[0].key).retention.mode == "GOVERNANCE"
    # Each entry has its index row under its day, named by its number and hash.
    rows = list(s3_store.list_keys(f"audit/index/date={now:%Y-%m-%d}/"))
    assert [layout.parse_index_key("", row) for row in rows] == [(SID, 1), (SID, 2)]


def test_an_entry_is_written_only_once_the_write_it_records_has_succeeded(s3_store) -> None:
    now = datetime.now(UTC)
    s3_store.put_bytes("taken.json", b"{}", content_type="application/json")
    with pytest.raises(AlreadyExists):
        write_audit(s3_store, "", SID, "archived", {}, LOCK, now,
                    alongside=lambda: s3_store.put_bytes("taken.json", b"{}", content_type="application/json"))
    assert read_chain(s3_store, "", SID)[0] == []
    write_audit(s3_store, "", SID, "archived", {"n": 2}, LOCK, now,
                alongside=lambda: s3_store.put_bytes("fresh.json", b"{}", content_type="application/json"))
    entries, seqs, _ = read_chain(s3_store, "", SID)
    assert s3_store.head("fresh.json") is not None and seqs == [1] and entries[0].details == {"n": 2}
    # The failed attempt's index row (written alongside) names an entry that does not exist:
    # one of the stale rows the sealer skips. The written entry's row is there too.
    rows = [layout.parse_index_key("", row) for row in s3_store.list_keys(f"audit/index/date={now:%Y-%m-%d}/")]
    assert rows == [(SID, 1), (SID, 1)]


def test_threads_appending_to_shared_chains_leave_each_chain_whole(s3_store) -> None:
    chains = [f"RE{n:032x}" for n in range(2)]
    now = datetime.now(UTC)

    def work(n: int) -> None:
        for name in chains:
            append(s3_store, "", name, f"action-{n}", {"writer": n}, None, now, likely_first=True)

    with ThreadPoolExecutor(3) as pool:
        list(pool.map(work, range(3)))
    for name in chains:
        entries, seqs, _ = read_chain(s3_store, "", name)
        assert seqs == [1, 2, 3] and chain.chain_problems(name, entries, seqs) == []
        assert sorted(e.details["writer"] for e in entries) == list(range(3))


def test_the_sealer_seals_each_finished_period_once_and_ignores_stale_index_rows(s3_store) -> None:
    now = datetime.now(UTC)
    yesterday = now - timedelta(days=1)
    write_audit(s3_store, "", SID, "archived", {}, None, yesterday)
    write_system_audit(s3_store, "", "policy-loaded", {"version": "abc"}, yesterday)
    day = f"{yesterday:%Y-%m-%d}"
    # A writer that lost a race (or died) leaves a row whose entry is another one, or none.
    s3_store.put_bytes(layout.index_key("", day, SID, 1, "f" * 64), b"", content_type="text/plain")
    s3_store.put_bytes(layout.index_key("", day, SID, 7, "e" * 64), b"", content_type="text/plain")
    policy = Policy.from_dict({"default": {"retention_days": 3}})
    sealed = seal_pending(s3_store, "", policy.longest_retention_days(), now)
    # Every period from the first indexed day's midnight to the last one over GRACE ago, in order.
    assert sealed[0].period_start == datetime.fromisoformat(day).replace(tzinfo=UTC)
    assert all(a.period_start + timedelta(hours=1) == b.period_start for a, b in zip(sealed, sealed[1:], strict=False))
    assert sealed[-1].period_start + timedelta(hours=1) + GRACE <= now < sealed[-1].period_start + timedelta(
        hours=2) + GRACE
    start = chain.period_holding(yesterday, 3600)
    [holding] = [s for s in sealed if s.period_start == start]
    assert (holding.count, holding.written) == (4, True)  # two entries and their index rows
    seal = json.loads(s3_store.get_bytes(layout.seal_key("", start)))
    entries = [layout.chain_key("", SID, 1), layout.chain_key("", chain.system_chain(day), 1)]
    digests = [chain.sha256_hex(s3_store.get_bytes(key)) for key in entries]
    rows = [layout.index_key("", day, SID, 1, digests[0]), layout.index_key("", day, chain.system_chain(day), 1,
                                                                           digests[1])]
    assert seal["leaves"] == sorted([[entries[0], digests[0]], [entries[1], digests[1]],
                                     [rows[0], chain.EMPTY_SHA256], [rows[1], chain.EMPTY_SHA256]])
    assert seal["root"] == chain.merkle_root(seal["leaves"]) and seal["period_seconds"] == 3600
    assert all(s.count == 0 for s in sealed if s is not holding)
    # Each seal holds its predecessor's SHA-256, the first the genesis.
    bodies = [s3_store.get_bytes(s.key) for s in sealed]
    assert [json.loads(body)["prev_seal"] for body in bodies] == [chain.seal_genesis()] + [
        chain.sha256_hex(body) for body in bodies[:-1]]
    lock = s3_store.head(holding.key).retention
    assert lock.mode == "COMPLIANCE" and lock.until == datetime.fromisoformat(seal["retain_until"])
    assert lock.until > now + timedelta(days=2)
    assert seal_pending(s3_store, "", policy.longest_retention_days(), now) == []  # nothing left to seal
    # Each seal written is recorded in the system chain of the day the sealer ran.
    today = chain.system_chain(f"{now:%Y-%m-%d}")
    recorded = read_chain(s3_store, "", today)[0]
    assert [(e.action, e.details["key"], e.details["seal_sha256"]) for e in recorded] == [
        ("period-sealed", s.key, s.sha256) for s in sealed]


class CrashBeforeTrim:
    """A Redis client that dies between writing the batch to S3 and trimming the stream."""

    def __init__(self, client: redis.Redis) -> None:
        self.client = client

    def xrange(self, *args, **kwargs):
        return self.client.xrange(*args, **kwargs)

    def xtrim(self, *args, **kwargs):
        raise redis.ConnectionError("connection lost")


def test_the_enqueue_script_records_each_accepted_callback_once_and_a_flush_moves_it_to_s3(
        redis_url, s3_store) -> None:
    settings = Settings(broker_url=redis_url, s3_bucket="unused")
    app = create_celery(settings)
    writer = QueueWriter.for_app(app, "recvault-test", 60, timeout=5, connect_timeout=3)
    stream = writer.keys.recvault(ledger.STREAM)
    received = "2026-11-24T10:00:00+00:00"
    row = ledger.ledger_row(SID, "completed", "AC" + "b" * 32, received)
    first = build_message(app, "recvault-test", f"{SID}:completed", {"n": 1}, ledger=row)
    again = build_message(app, "recvault-test", f"{SID}:completed", {"n": 1}, ledger=row)
    other = build_message(app, "recvault-test", "beat:job", {"n": 2})  # not a callback: no row
    assert writer.enqueue([first, again, other]) == [True, False, True]
    client = writer.client
    assert [fields[b"r"].decode() for _, fields in client.xrange(stream)] == [row]

    try:
        flush_accepted(CrashBeforeTrim(client), stream, s3_store, "", LOCK)  # type: ignore[arg-type]
    except redis.ConnectionError:
        pass
    assert client.xlen(stream) == 1  # written to S3, not trimmed
    assert flush_accepted(client, stream, s3_store, "", LOCK) == 0  # found its object: trims, writes nothing
    assert client.xlen(stream) == 0
    [key] = list(s3_store.list_keys("audit/accepted/"))
    assert key.startswith("audit/accepted/date=2026-11-24/")
    rows = [json.loads(line) for line in s3_store.get_bytes(key).splitlines()]
    assert [(r["sid"], r["status"], r["received_at"]) for r in rows] == [(SID, "completed", received)]
    assert s3_store.head(key).retention.mode == "GOVERNANCE"
    try:
        s3_store.put_bytes(key, b"{}", content_type="application/x-ndjson")
        raise AssertionError("a ledger object was overwritten")
    except AlreadyExists:
        pass
    writer.close()


def test_a_spooled_callback_keeps_its_ledger_row() -> None:
    settings = Settings(broker_url="redis://127.0.0.1:1/0", s3_bucket="unused")
    app = create_celery(settings)
    payload = {"params": {"RecordingSid": SID, "RecordingStatus": "absent", "AccountSid": "AC" + "c" * 32},
               "received_at": "2026-11-24T10:00:00+00:00"}
    message = build_message(app, "q", f"{SID}:absent", payload)
    assert ledger.row_from_message(message.message) == ledger.ledger_row(
        SID, "absent", "AC" + "c" * 32, "2026-11-24T10:00:00+00:00")
    assert ledger.row_from_message(build_message(app, "q", "k", {"n": 1}).message) == ""
    assert kombu_redis.ENQUEUE_ONCE.count("XADD") == 1
