"""The accepted-callback ledger's flush and tail on real Redis and SeaweedFS: malformed entries go aside
instead of stalling the flush, nothing is written twice or trimmed unwritten, the tail is read without
consuming it, and ingest's /metrics says how old the oldest row is."""

from __future__ import annotations

import base64
import json
import re
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import redis
from aiohttp.test_utils import TestClient, TestServer
from prometheus_client import generate_latest

from recvault import layout
from recvault.audit import ledger
from recvault.audit.ledger_flush import Flushed, flush, flush_accepted, rejected_rows
from recvault.audit.ledger_tail import oldest_row_age, read_range, read_tail, stream_key, tail_from_settings
from recvault.errors import AlreadyExists
from recvault.ingest.app import create_app
from recvault.ingest.metrics import IngestMetrics
from recvault.launch.services import free_port
from recvault.settings import Settings
from recvault.storage.base import Retention

STREAM = "recvault:accepted"
ACCOUNT = "AC" + "b" * 32
DAY = "2026-11-24"
NEXT_DAY = "2026-11-25"
LOCK = Retention(mode="COMPLIANCE", until=datetime.now(UTC) + timedelta(days=1))
GAUGE = "recvault_ledger_oldest_row_age_seconds"
# Entries no ledger row looks like, one of each kind the flush must survive, and why each is refused.
MALFORMED: list[tuple[dict[bytes, bytes], str]] = [
    ({b"x": b"RE" + b"1" * 32 + b"|completed|" + ACCOUNT.encode() + b"|2026-11-24T10:00:00+00:00"},
     "no field 'r'"),
    ({b"r": b"RE" + b"2" * 32 + b"|completed|" + ACCOUNT.encode()}, "3 '|'-separated parts"),
    ({b"r": b"RE" + b"3" * 32 + b"|completed|" + ACCOUNT.encode() + b"|2026-13-45T10:00:00+00:00"},
     "not an ISO 8601 time"),
    ({b"r": b"RE" + b"4" * 32 + b"|completed|" + ACCOUNT.encode() + b"|2026-11-24T10:00:00\xff\xfe"}, "not UTF-8"),
    ({b"r": b"CA" + b"5" * 32 + b"|completed|" + ACCOUNT.encode() + b"|2026-11-24T10:00:00+00:00"},
     "not a RecordingSid"),
]


def sid(n: int) -> str:
    return f"RE{n:032x}"


def row(n: int, day: str = DAY) -> dict[bytes, bytes]:
    """The fields ingest's enqueue script gives callback n's entry."""
    return {ledger.FIELD: ledger.ledger_row(sid(n), "completed", ACCOUNT, f"{day}T10:00:{n % 60:02d}+00:00").encode()}


@pytest.fixture
def client(redis_url: str) -> redis.Redis:
    return redis.Redis.from_url(redis_url)


def add(client: redis.Redis, entries: list[dict[bytes, bytes]]) -> list[str]:
    return [client.xadd(STREAM, fields).decode() for fields in entries]  # type: ignore[arg-type, union-attr]


def ledger_objects(store: Any, folder: str = layout.AUDIT_ACCEPTED) -> dict[str, list[dict[str, Any]]]:
    return {key: [json.loads(line) for line in store.get_bytes(key).splitlines()]
            for key in store.list_keys(folder)}


class CrashBeforeTrim:
    """A Redis client that dies between writing to S3 and trimming the stream."""

    def __init__(self, client: redis.Redis) -> None:
        self.client = client

    def xrange(self, *args: Any, **kwargs: Any) -> Any:
        return self.client.xrange(*args, **kwargs)

    def xtrim(self, *args: Any, **kwargs: Any) -> Any:
        raise redis.ConnectionError("connection lost")


def test_one_malformed_row_no_longer_stalls_the_flush(client, s3_store) -> None:
    """Attack 8, "stalled ledger": one entry that does not decode made every flush fail, so no accepted
    callback reached S3 again. Now each malformed entry goes aside whole and the rows around it are flushed."""
    good = [row(n) for n in range(3)]
    ids = add(client, [good[0], MALFORMED[0][0], good[1], *(fields for fields, _ in MALFORMED[1:]), good[2]])
    bad_ids = [ids[1], *ids[3:-1]]

    assert flush(client, STREAM, s3_store, "", LOCK) == Flushed(3, len(MALFORMED))

    assert client.xlen(STREAM) == 0
    [(key, rows)] = ledger_objects(s3_store).items()
    assert key == layout.accepted_key("", DAY, ids[0])
    assert [(r["id"], r["sid"]) for r in rows] == [(ids[0], sid(0)), (ids[2], sid(1)), (ids[-1], sid(2))]
    assert s3_store.head(key).retention.mode == "COMPLIANCE"
    for stream_id, (fields, why) in zip(bad_ids, MALFORMED, strict=True):
        rejected_key = layout.rejected_row_key("", ledger.id_day(stream_id), stream_id)
        record = json.loads(s3_store.get_bytes(rejected_key))
        assert record["id"] == stream_id and why in record["error"]
        assert {base64.b64decode(n): base64.b64decode(v) for n, v in record["fields"].items()} == fields
        assert s3_store.head(rejected_key).retention.mode == "COMPLIANCE"
        with pytest.raises(AlreadyExists):
            s3_store.put_bytes(rejected_key, b"{}", content_type="application/json")
    today = ledger.id_day(ids[0])
    assert [(key, record["id"]) for key, record in rejected_rows(s3_store, "", [today])] == [
        (layout.rejected_row_key("", today, stream_id), stream_id) for stream_id in bad_ids]
    assert layout.parse_rejected_row_key("", layout.rejected_row_key("", today, ids[1])) == (today, ids[1])


def test_a_malformed_row_is_logged_without_its_bytes(client, s3_store, caplog) -> None:
    secret = b"RE" + b"6" * 32 + b"|completed|token=hunter2hunter2|2026-11-24T10:00:00+00:00"
    [stream_id] = add(client, [{b"r": secret}])
    caplog.set_level("INFO", logger="recvault.worker")
    assert flush(client, STREAM, s3_store, "", LOCK).rejected == 1
    [warning] = [r for r in caplog.records if r.levelname == "WARNING"]
    assert warning.getMessage() == "malformed accepted-ledger entry moved aside"
    assert warning.__dict__["stream_id"] == stream_id and "AccountSid" in warning.__dict__["error"]
    logged = caplog.text + "".join(str(r.__dict__) for r in caplog.records)
    assert "hunter2" not in logged and "RE" + "6" * 32 not in logged


def test_days_split_the_ledger_objects_and_malformed_rows_between_them_go_aside(client, s3_store) -> None:
    ids = add(client, [row(1), row(2), MALFORMED[1][0], row(3, NEXT_DAY), MALFORMED[4][0], row(4, NEXT_DAY)])
    assert flush(client, STREAM, s3_store, "", LOCK, batch=4) == Flushed(4, 2)
    assert client.xlen(STREAM) == 0
    objects = ledger_objects(s3_store)
    assert {key: [r["sid"] for r in rows] for key, rows in objects.items()} == {
        layout.accepted_key("", DAY, ids[0]): [sid(1), sid(2)],
        layout.accepted_key("", NEXT_DAY, ids[3]): [sid(3), sid(4)],
    }
    assert [record["id"] for _, record in rejected_rows(s3_store, "", [ledger.id_day(ids[2])])] == [ids[2], ids[4]]


def test_a_crash_between_writing_and_trimming_writes_nothing_twice(client, s3_store) -> None:
    ids = add(client, [row(1), MALFORMED[2][0], row(2)])
    with pytest.raises(redis.ConnectionError):
        flush(CrashBeforeTrim(client), STREAM, s3_store, "", LOCK)  # type: ignore[arg-type]
    assert client.xlen(STREAM) == 3  # in S3, not trimmed
    ids += add(client, [row(3)])  # another callback meanwhile: the next run's batch is longer

    assert flush(client, STREAM, s3_store, "", LOCK) == Flushed(1, 0)
    assert client.xlen(STREAM) == 0
    objects = ledger_objects(s3_store)
    assert {key: [r["sid"] for r in rows] for key, rows in objects.items()} == {
        layout.accepted_key("", DAY, ids[0]): [sid(1), sid(2)],  # found, trusted, trimmed
        layout.accepted_key("", DAY, ids[3]): [sid(3)],
    }
    assert len(list(s3_store.list_keys(layout.AUDIT_LEDGER_REJECTED))) == 1


def test_a_malformed_entry_already_moved_aside_is_only_trimmed(client, s3_store) -> None:
    """A crash after the move aside and before the trim, made by writing the record first."""
    [stream_id] = add(client, [MALFORMED[3][0]])
    record = {"id": stream_id, "fields": ledger.raw_fields(MALFORMED[3][0]), "error": "worded by an older release"}
    key = layout.rejected_row_key("", ledger.id_day(stream_id), stream_id)
    s3_store.put_bytes(key, layout.json_line(record), content_type="application/json", retention=LOCK)

    assert flush(client, STREAM, s3_store, "", LOCK) == Flushed(0, 0)
    assert client.xlen(STREAM) == 0
    assert list(s3_store.list_keys(layout.AUDIT_LEDGER_REJECTED)) == [key]


def test_an_object_the_flush_did_not_write_never_decides_what_is_trimmed(client, s3_store) -> None:
    """Someone with PutObject writes at the keys the next flush will use (they are predictable), claiming
    rows up to a far later id: the flush writes beside them and trims only what it wrote itself."""
    ids = add(client, [row(1), row(2), MALFORMED[0][0]])
    forged = b"".join(layout.json_line({"id": stream_id, "sid": sid(9)}) for stream_id in (ids[0], "99999999999999-0"))
    taken = layout.accepted_key("", DAY, ids[0])
    s3_store.put_bytes(taken, forged, content_type="application/x-ndjson")
    taken_aside = layout.rejected_row_key("", ledger.id_day(ids[2]), ids[2])
    s3_store.put_bytes(taken_aside, b'{"id": "nothing"}', content_type="application/json")

    assert flush(client, STREAM, s3_store, "", LOCK) == Flushed(2, 1)
    assert client.xlen(STREAM) == 0
    objects = ledger_objects(s3_store)
    [beside] = set(objects) - {taken}
    assert re.fullmatch(rf"audit/accepted/date={DAY}/{ids[0]}\.[0-9a-f]{{16}}\.jsonl", beside)
    assert [r["sid"] for r in objects[beside]] == [sid(1), sid(2)] and s3_store.get_bytes(taken) == forged
    records = dict(rejected_rows(s3_store, "", [ledger.id_day(ids[2])]))
    assert records.pop(taken_aside) == {"id": ids[2], "unreadable": "not a record of a malformed ledger entry"}
    [(beside_key, moved)] = records.items()
    assert moved["id"] == ids[2] and layout.parse_rejected_row_key("", beside_key) == (ledger.id_day(ids[2]), ids[2])


def test_rejected_rows_reads_the_first_version_of_each_record(client, s3_store) -> None:
    [stream_id] = add(client, [MALFORMED[1][0]])
    flush(client, STREAM, s3_store, "", LOCK)
    key = layout.rejected_row_key("", ledger.id_day(stream_id), stream_id)
    s3_store.put_bytes(key, layout.json_line({"id": stream_id, "fields": {}, "error": "rewritten"}),
                       content_type="application/json", create_only=False)  # a new version over it
    [(found_key, record)] = rejected_rows(s3_store, "", [ledger.id_day(stream_id)])
    assert found_key == key and record["fields"] == ledger.raw_fields(MALFORMED[1][0])


def test_flush_accepted_still_counts_rows_written(client, s3_store) -> None:
    add(client, [row(1), MALFORMED[0][0]])
    assert flush_accepted(client, STREAM, s3_store, "", LOCK) == 1


def test_read_tail_returns_every_entry_and_leaves_the_stream_as_it_was(client) -> None:
    ids = add(client, [row(1), MALFORMED[3][0], row(2), MALFORMED[0][0], row(3)])
    tail = read_tail(client, STREAM)
    assert [stream_id for stream_id, _, _ in tail] == ids
    assert [r.recording_sid if r else None for _, r, _ in tail] == [sid(1), None, sid(2), None, sid(3)]
    assert tail[0][2] == row(1)[ledger.FIELD] and tail[1][2] == MALFORMED[3][0][ledger.FIELD]
    assert json.loads(tail[3][2]) == ledger.raw_fields(MALFORMED[0][0])  # not one field r: all of them
    assert client.xlen(STREAM) == 5
    assert [e.id for e in read_range(client, STREAM, "-", ids[-1], batch=2)] == ids  # in batches
    assert read_tail(client, "recvault:nothing") == []


def test_the_oldest_rows_age_comes_from_its_stream_id(client) -> None:
    assert oldest_row_age(client, STREAM) == 0.0
    now = datetime.now(UTC)
    millis = int(now.timestamp() * 1000) - 600_000
    client.xadd(STREAM, row(1), id=f"{millis}-0")  # type: ignore[arg-type]
    add(client, [row(2)])
    assert oldest_row_age(client, STREAM, now) == pytest.approx(600, abs=0.002)


def test_the_gauge_has_no_sample_while_redis_cannot_be_read() -> None:
    metrics = IngestMetrics()
    assert f"# TYPE {GAUGE} gauge" in generate_latest(metrics.exposed).decode()

    def unreachable() -> float:
        raise redis.ConnectionError("refused")

    metrics.ledger_age.read = unreachable
    assert f"\n{GAUGE} " not in generate_latest(metrics.exposed).decode()
    metrics.ledger_age.read = lambda: 12.5
    assert f"\n{GAUGE} 12.5\n" in generate_latest(metrics.exposed).decode()


async def test_ingest_metrics_show_how_old_the_oldest_row_waiting_in_redis_is(redis_url, tmp_path) -> None:
    settings = Settings(twilio_auth_tokens="f3b1c0d9e8a7f6e5d4c3b2a190817263", broker_url=redis_url,
                        data_dir=tmp_path)
    stream = stream_key(settings)
    async with TestClient(TestServer(create_app(settings))) as web:
        assert f"\n{GAUGE} 0.0\n" in await (await web.get("/metrics")).text()
        millis = int(time.time() * 1000) - 900_000
        redis.Redis.from_url(redis_url).xadd(stream, row(1), id=f"{millis}-0")  # type: ignore[arg-type]
        text = await (await web.get("/metrics")).text()
    [value] = re.findall(rf"\n{GAUGE} ([0-9.e+]+)\n", text)
    assert 900 <= float(value) < 960


def test_the_tail_of_a_broker_out_of_reach_is_reported_within_seconds_without_secrets(redis_url) -> None:
    closed = Settings(broker_url=f"redis://:hunter2hunter2@127.0.0.1:{free_port()}/0", s3_bucket="unused")
    started = time.monotonic()
    tail = tail_from_settings(closed)
    assert time.monotonic() - started < 5
    assert not tail.reachable and tail.rows == [] and "did not answer" in tail.problem
    assert "hunter2" not in tail.problem

    reachable = Settings(broker_url=redis_url, s3_bucket="unused")
    client = redis.Redis.from_url(redis_url)
    ids = add_to(client, stream_key(reachable), [row(1), MALFORMED[4][0]])
    tail = tail_from_settings(reachable)
    assert tail.reachable and tail.problem == "" and [(i, r is None) for i, r, _ in tail.rows] == [
        (ids[0], False), (ids[1], True)]
    assert client.xlen(stream_key(reachable)) == 2


def add_to(client: redis.Redis, stream: str, entries: list[dict[bytes, bytes]]) -> list[str]:
    return [client.xadd(stream, fields).decode() for fields in entries]  # type: ignore[arg-type, union-attr]


def test_the_beat_task_flushes_past_a_malformed_row_and_says_so(sim, sim_account, s3_store, s3_endpoint, redis_url,
                                                                 tmp_path) -> None:
    from recvault.queue.celery_factory import LEDGER_FLUSH_TASK
    from recvault.workers.beat_schedule import ledger_flush_payload
    from tests.workers.test_beat import run_task

    settings = Settings(twilio_account_sid=sim_account.sid, twilio_auth_tokens=sim_account.token,
                        twilio_api_base_url=sim.base_url, broker_url=redis_url, s3_bucket=s3_store.bucket,
                        s3_endpoint_url=s3_endpoint, data_dir=tmp_path)
    client = redis.Redis.from_url(redis_url)
    ids = add_to(client, stream_key(settings), [row(1), MALFORMED[1][0], row(2)])
    assert run_task(settings, LEDGER_FLUSH_TASK, ledger_flush_payload()) == (
        "2 accepted row(s) flushed, 1 malformed row(s) moved aside")
    assert client.xlen(stream_key(settings)) == 0
    assert list(s3_store.list_keys(layout.AUDIT_ACCEPTED)) == [layout.accepted_key("", DAY, ids[0])]
    rejected = layout.rejected_row_key("", ledger.id_day(ids[1]), ids[1])
    assert list(s3_store.list_keys(layout.AUDIT_LEDGER_REJECTED)) == [rejected]
    assert s3_store.head(rejected).retention.mode == "COMPLIANCE"
