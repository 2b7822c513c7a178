"""Rolling upgrade: this release's worker runs every message an earlier release queued, and leaves
messages and documents of a newer version to a newer release.

The earlier releases' messages are fixtures taken from the commits that queued them
(tests/workers/fixtures/README.md); they run on the real Redis, SeaweedFS and the Twilio simulator.
"""

from __future__ import annotations

import base64
import json
import logging
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any

import pytest
import redis
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from recvault import documents as docs
from recvault import layout
from recvault.cli import main
from recvault.queue import kombu_redis
from recvault.queue.celery_factory import (
    ARCHIVE_TASK,
    PRICE_SWEEP_TASK,
    RECONCILE_TASK,
    REFRESH_TASK,
    create_celery,
)
from recvault.queue.writer import Outgoing, QueueWriter, build_message
from recvault.settings import Settings
from recvault.versions import DOCUMENT_FIELD, DOCUMENT_VERSION, MESSAGE_FIELD, MESSAGE_VERSION
from recvault.workers import delivery
from recvault.workers.archive import ArchiveOptions
from recvault.workers.context import ProcessContext
from recvault.workers.dead_letters import DeadLetters
from recvault.workers.metrics import WorkerMetrics
from recvault.workers.tasks import register_tasks
from tests.fixtures.simulator import SimAccount
from tests.fixtures.worker import running_worker, wait_for

FIXTURES = Path(__file__).parent / "fixtures"
# The account every fixture's messages name (the simulator serves it here).
ACCOUNT = "AC5f1e0c2b7d9a4e3f8a6b1c0d2e4f6a8b"
NEWER = MESSAGE_VERSION + 1


def load_fixtures() -> list[dict[str, Any]]:
    found = []
    for path in sorted(FIXTURES.glob("*.json")):
        fixture = json.loads(path.read_text())
        fixture["name"] = path.stem
        found.append(fixture)
    return found


PREVIOUS = load_fixtures()


@pytest.fixture
def sim_account() -> SimAccount:
    """The fixtures' account, so the simulator serves the recordings their messages name."""
    return SimAccount(ACCOUNT, "5c0ffee15c0ffee15c0ffee15c0ffee1")


@pytest.fixture
def settings(sim, sim_account, s3_store, s3_endpoint, redis_url, tmp_path) -> Settings:
    return Settings(twilio_account_sid=sim_account.sid, twilio_auth_tokens=sim_account.token,
                    twilio_api_base_url=sim.base_url, broker_url=redis_url, s3_bucket=s3_store.bucket,
                    s3_endpoint_url=s3_endpoint, data_dir=tmp_path)


@pytest.fixture
def no_pause(monkeypatch) -> None:
    monkeypatch.setattr(delivery, "NEWER_VERSION_PAUSE_SECONDS", 0)


def metric(metrics: WorkerMetrics, name: str, **labels: str) -> float:
    for family in text_string_to_metric_families(generate_latest(metrics.registry).decode()):
        for sample in family.samples:
            if sample.name == name and sample.labels == labels:
                return sample.value
    return 0.0


def outcomes(metrics: WorkerMetrics) -> dict[tuple[str, str], float]:
    """recvault_tasks_total by (task, outcome)."""
    counted = {}
    for family in text_string_to_metric_families(generate_latest(metrics.registry).decode()):
        for sample in family.samples:
            if sample.name == "recvault_tasks_total" and sample.value:
                counted[(sample.labels["task"], sample.labels["outcome"])] = sample.value
    return counted


def queued(redis_url: str, queue: str = "recvault") -> list[dict[str, Any]]:
    """The messages on the queue, oldest first: headers and payload."""
    messages = []
    for raw in reversed(redis.Redis.from_url(redis_url).lrange(queue, 0, -1)):
        envelope = json.loads(raw)
        args, _, _ = json.loads(base64.b64decode(envelope["body"]))
        messages.append({"headers": envelope["headers"], "payload": args[0],
                         "tag": envelope["properties"]["delivery_tag"]})
    return messages


def dead_letters(redis_url: str) -> list:
    letters = DeadLetters.connect(redis_url)
    try:
        return letters.list()
    finally:
        letters.close()


def _day(day: str) -> datetime:
    return datetime.fromisoformat(day).replace(hour=12, tzinfo=UTC)


def _unpriced_document(sim, archive_env, sid: str | None, day: str) -> str:
    """A recording archived before Twilio had its price, which Twilio has now; its document's key."""
    rec = sim.create_recording(**({"sid": sid} if sid else {}), duration=5, date_created=_day(day),
                               price_delay=3600)
    result = archive_env.archive(rec)
    assert json.loads(archive_env.store.get_bytes(result.key))["price"] is None
    rec.price_delay = 0
    return result.key


class World:
    """What the simulator and the archive hold for the fixtures' messages, and what each must lead to."""

    def __init__(self) -> None:
        self.archived: dict[str, dict] = {}  # metadata key -> the labels its document must record
        self.events: list[str] = []  # event document keys
        self.priced: list[str] = []  # metadata keys a refresh must price
        self.runs: dict[tuple[str, str], int] = {}  # (task, outcome) -> runs

    def expect(self, task: str, outcome: str) -> None:
        self.runs[(task, outcome)] = self.runs.get((task, outcome), 0) + 1


def given(sim, archive_env, fixtures: list[dict]) -> World:
    """Set the simulator and the archive up as each message expects them, at the time it was queued."""
    world = World()
    for fixture in fixtures:
        task, payload = fixture["task"], fixture["payload"]
        if task == ARCHIVE_TASK:
            params = payload["params"]
            start = parsedate_to_datetime(params["RecordingStartTime"])
            duration = int(params.get("RecordingDuration", "5"))
            sim.create_recording(sid=params["RecordingSid"], call_sid=params.get("CallSid"),
                                 status=params["RecordingStatus"], duration=duration,
                                 channels=int(params["RecordingChannels"]), source=params["RecordingSource"],
                                 start_time=start, date_created=start + timedelta(seconds=duration))
            day = start.strftime("%Y-%m-%d")
            if params["RecordingStatus"] == "completed":
                world.archived[layout.metadata_key("", day, params["RecordingSid"])] = payload.get("labels") or {}
                world.expect(task, "archived")
            else:
                world.events.append(layout.event_key("", day, params["RecordingSid"], params["RecordingStatus"]))
                world.expect(task, "event-recorded")
        elif task == REFRESH_TASK:
            day = payload.get("date") or payload["metadata_key"].split("date=", 1)[1][:10]
            world.priced.append(_unpriced_document(sim, archive_env, payload["recording_sid"], day))
            world.expect(task, "refreshed")
        elif task == RECONCILE_TASK:
            # A recording of the window the archive lacks: reconcile queues it, a worker archives it.
            rec = sim.create_recording(duration=5, date_created=_day(payload["date_from"]))
            world.archived[layout.metadata_key("", payload["date_from"], rec.sid)] = {}
            world.expect(ARCHIVE_TASK, "archived")
            world.expect(task, "done")
        elif task == PRICE_SWEEP_TASK:
            # An unpriced recording of a swept day: the sweep queues its last refresh.
            world.priced.append(_unpriced_document(sim, archive_env, None, payload["dates"][1]))
            world.expect(REFRESH_TASK, "refreshed")
            world.expect(task, "done")
        else:  # seal, ledger flush, queued erasures: they run on whatever there is
            world.expect(task, "done")
    return world


def publish_as_queued(app, settings: Settings, fixture: dict) -> Outgoing:
    """The message exactly as the earlier release queued it (envelope, headers, body), through the writer."""
    message = fixture["message"]
    return Outgoing(fixture["dedup_key"] or f"fixture:{fixture['name']}", json.dumps(message),
                    message["headers"]["id"], message["properties"]["delivery_tag"])


def publish_rebuilt(app, settings: Settings, fixture: dict) -> Outgoing:
    """The earlier release's payload in a message of this release's writer (a retry or replay of it)."""
    headers = fixture["message"]["headers"]
    return build_message(app, settings.queue, f"rebuilt:{fixture['name']}", fixture["payload"],
                         task=fixture["task"], task_id=headers["id"], retries=headers["retries"])


def test_the_fixtures_cover_every_task_and_the_earlier_shapes() -> None:
    tasks = {fixture["task"] for fixture in PREVIOUS}
    assert tasks == {ARCHIVE_TASK, REFRESH_TASK, RECONCILE_TASK, PRICE_SWEEP_TASK, "recvault.run_due_erasures",
                     "recvault.seal_audit_days", "recvault.flush_accepted_ledger"}
    assert all(MESSAGE_FIELD not in fixture["payload"] for fixture in PREVIOUS)  # queued before versions
    assert any(f["task"] == ARCHIVE_TASK and "labels" not in f["payload"] for f in PREVIOUS)
    assert any(f["task"] == REFRESH_TASK and "metadata_key" in f["payload"] for f in PREVIOUS)
    assert any(f["message"]["headers"]["retries"] for f in PREVIOUS)  # a retry, with its ETA
    for fixture in PREVIOUS:  # the payload shown is the one the body carries
        args, _, _ = json.loads(base64.b64decode(fixture["message"]["body"]))
        assert args == [fixture["payload"]] and fixture["message"]["headers"]["task"] == fixture["task"]
    assert {f["commit"] for f in PREVIOUS} <= set((FIXTURES / "README.md").read_text().split("`"))


@pytest.mark.parametrize("publish", [publish_as_queued, publish_rebuilt], ids=["as-queued", "rebuilt"])
def test_a_worker_of_this_release_runs_every_message_an_earlier_release_queued(
        publish, settings, sim, archive_env, redis_url) -> None:
    world = given(sim, archive_env, PREVIOUS)
    app = create_celery(settings)
    writer = QueueWriter.for_app(app, settings.queue, 3600, timeout=2, connect_timeout=2)
    assert writer.enqueue([publish(app, settings, fixture) for fixture in PREVIOUS]) == [True] * len(PREVIOUS)
    writer.close()

    metrics = WorkerMetrics()
    client = redis.Redis.from_url(redis_url)
    keys = kombu_redis.RedisKeys.for_queue(settings.queue, app.conf.broker_transport_options)
    expected = sum(world.runs.values())
    with running_worker(settings, metrics=metrics):
        try:
            wait_for(lambda: sum(outcomes(metrics).values()) >= expected and client.llen(keys.queue) == 0
                     and client.hlen(keys.unacked) == 0, timeout=60, what="every message to be run")
        except AssertionError as error:
            held = [json.loads(record)[0]["headers"]["id"] for record in client.hvals(keys.unacked)]
            raise AssertionError(f"{error}: ran {outcomes(metrics)} of {world.runs}; "
                                 f"{client.llen(keys.queue)} queued, held: {held}") from None
    client.close()

    assert outcomes(metrics) == world.runs
    assert dead_letters(redis_url) == []
    store = archive_env.store
    for key, labels in world.archived.items():
        document = json.loads(store.get_bytes(key))
        assert document["labels"] == labels and document[DOCUMENT_FIELD] == DOCUMENT_VERSION, key
    for key in world.events:
        assert json.loads(store.get_bytes(key))[DOCUMENT_FIELD] == DOCUMENT_VERSION
    for key in world.priced:
        assert json.loads(store.get_bytes(key))["price"] is not None, key


def newer(payload: dict) -> dict:
    """The payload as a release after this one might write it: a version this worker does not know."""
    return {**payload, MESSAGE_FIELD: NEWER, "shape": {"of": "a newer release"}}


def test_a_message_of_a_newer_version_goes_back_to_the_queue_for_a_newer_worker(
        settings, sim, redis_url, monkeypatch, caplog) -> None:
    """A real worker: the message is handed back, once per pause, never run, never dead-lettered."""
    pause = 0.5
    monkeypatch.setattr(delivery, "NEWER_VERSION_PAUSE_SECONDS", pause)
    fixture = next(f for f in PREVIOUS if f["name"] == "921b7c9-archive-completed")
    params = fixture["payload"]["params"]
    rec = sim.create_recording(sid=params["RecordingSid"], call_sid=params["CallSid"], duration=5)
    payload = newer(fixture["payload"])
    app = create_celery(settings)
    message = build_message(app, settings.queue, f"{rec.sid}:completed", payload)
    writer = QueueWriter.for_app(app, settings.queue, 3600, timeout=2, connect_timeout=2)
    assert writer.publish(message)
    writer.close()

    metrics = WorkerMetrics()

    def handed_back() -> list[logging.LogRecord]:
        return [r for r in caplog.records if r.getMessage() == "newer version handed back"]

    with caplog.at_level(logging.WARNING, logger="recvault.worker"), running_worker(settings, metrics=metrics):
        started = time.monotonic()
        wait_for(lambda: len(handed_back()) >= 3, timeout=30, what="the message to go round three times")
        elapsed = time.monotonic() - started
        rounds = len(handed_back())
    # Not a hot loop: one round per pause, however many threads the worker has free.
    assert rounds <= elapsed / pause + 1
    for record in handed_back():
        assert (record.levelno, record.task_id, record.version, record.known, record.what) == (
            logging.WARNING, message.task_id, NEWER, MESSAGE_VERSION, "message")
        assert record.recording_sid == rec.sid
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]

    # Still waiting for a newer worker, as it was queued; never run, never dead-lettered. (A copy
    # waiting in the queue is recorded as pending too, under the same delivery tag. Celery's test
    # harness stops the worker as a cold shutdown does, without waiting for the thread that holds
    # the message: that message goes back to the queue, and the copy the thread queues after its
    # pause joins it. A newer worker runs both, which the archive absorbs.)
    client = redis.Redis.from_url(redis_url)
    keys = kombu_redis.RedisKeys.for_queue(settings.queue, app.conf.broker_transport_options)
    held = [json.loads(record)[0] for record in client.hvals(keys.unacked)]
    waiting = [json.loads(raw) for raw in client.lrange(keys.queue, 0, -1)]
    client.close()
    copies = {copy["properties"]["delivery_tag"]: copy for copy in (*held, *waiting)}
    assert 1 <= len(copies) <= 2
    for copy in copies.values():
        args, _, _ = json.loads(base64.b64decode(copy["body"]))
        assert args == [payload] and copy["headers"]["id"] == message.task_id and copy["headers"]["retries"] == 0
    assert dead_letters(redis_url) == []
    assert rec.media_requests == 0 and not [r for r in sim.state.requests if rec.sid in r.path]
    assert metric(metrics, "recvault_tasks_total", task=ARCHIVE_TASK, outcome="newer-version") >= rounds - 1
    assert metric(metrics, "recvault_dead_letters_total", error="PoisonMessage") == 0


def test_every_task_hands_a_newer_message_back_unchanged(settings, redis_url, no_pause, caplog) -> None:
    """Whatever the task, and whether or not this release could parse the payload."""
    app = create_celery(settings)
    process = ProcessContext(settings, app)
    process.build()
    register_tasks(app, process)
    client = redis.Redis.from_url(redis_url)
    cases = [(f["task"], newer(f["payload"])) for f in PREVIOUS]
    cases.append((ARCHIVE_TASK, {MESSAGE_FIELD: NEWER, "event": {"a": "shape this release cannot parse"}}))
    cases.append((REFRESH_TASK, {MESSAGE_FIELD: NEWER, "recording": "RE?"}))
    for n, (task, payload) in enumerate(cases):
        task_id = f"task-{n}"
        with caplog.at_level(logging.WARNING, logger="recvault.worker"):
            assert app.tasks[task].apply(args=(payload,), task_id=task_id, retries=2).get() == "newer-version"
        [copy] = queued(redis_url)
        assert copy["payload"] == payload and copy["headers"]["task"] == task
        assert (copy["headers"]["id"], copy["headers"]["retries"], copy["headers"]["eta"]) == (task_id, 2, None)
        client.delete(settings.queue)
        [record] = [r for r in caplog.records if r.getMessage() == "newer version handed back"]
        assert record.levelno == logging.WARNING and (record.task_id, record.version) == (task_id, NEWER)
        caplog.clear()
    client.close()
    assert dead_letters(redis_url) == []


def test_a_message_whose_version_is_no_number_is_dead_lettered(settings, redis_url) -> None:
    app = create_celery(settings)
    process = ProcessContext(settings, app)
    process.build()
    register_tasks(app, process)
    payload = {MESSAGE_FIELD: "2", "account_sid": ACCOUNT, "recording_sid": "RE" + "1" * 32, "date": "2026-11-30"}
    assert app.tasks[REFRESH_TASK].apply(args=(payload,)).get() == "dead-lettered"
    [letter] = dead_letters(redis_url)
    assert letter.error == "InvalidVersion" and letter.payload == payload


def test_retries_and_replays_keep_the_payload_and_its_version(settings, sim, redis_url, monkeypatch) -> None:
    """A retry queues the payload it ran, and `dlq replay` the payload it stored: neither gains a version."""
    app = create_celery(settings)
    process = ProcessContext(settings, app)
    process.build()
    register_tasks(app, process)
    earlier = next(f for f in PREVIOUS if f["name"] == "921b7c9-archive-completed")["payload"]
    # Twilio does not know the recording yet (404 within the grace period): retried.
    fresh = {**earlier, "received_at": datetime.now(UTC).isoformat()}
    for n, payload in enumerate((fresh, {MESSAGE_FIELD: MESSAGE_VERSION, **fresh})):
        assert app.tasks[ARCHIVE_TASK].apply(args=(payload,), task_id=f"t{n}").get() == "retrying"
        [retry] = queued(redis_url)
        assert retry["payload"] == payload and retry["headers"]["retries"] == 1
        redis.Redis.from_url(redis_url).delete(settings.queue)

    letters = DeadLetters.connect(redis_url)
    letter = letters.add("RE921b7c90000000000000000000000001:completed", ARCHIVE_TASK, earlier,
                         reason="gone", error="RecordingGone", attempts=1)
    letters.close()
    monkeypatch.setenv("RECVAULT_BROKER_URL", redis_url)
    assert main(["dlq", "replay", letter.id]) == 0
    [replayed] = queued(redis_url)
    assert replayed["payload"] == earlier and replayed["headers"]["task"] == ARCHIVE_TASK


@pytest.fixture
def newer_document(sim, archive_env) -> Iterator[tuple[Any, str, bytes]]:
    """An unpriced recording whose document a newer release rewrote in a schema this one does not know."""
    rec = sim.create_recording(duration=5, date_created=_day("2026-11-30"), price_delay=3600)
    key = archive_env.archive(rec).key
    document = json.loads(archive_env.store.get_bytes(key))
    assert document[DOCUMENT_FIELD] == DOCUMENT_VERSION
    document.update({DOCUMENT_FIELD: DOCUMENT_VERSION + 1, "charges": [{"kind": "recording", "amount": None}]})
    now = datetime.now(UTC)
    archive_env.store.put_bytes(key, layout.json_line(document), content_type="application/json", create_only=False,
                                retention=docs.retention_of(document, now), placement=docs.placement_of(document))
    rec.price_delay = 0  # Twilio has the price now
    yield rec, key, archive_env.store.get_bytes(key)


def test_a_refresh_leaves_a_newer_schema_document_to_a_newer_worker(
        settings, sim, archive_env, newer_document, redis_url, no_pause, caplog) -> None:
    rec, key, written = newer_document
    app = create_celery(settings)
    process = ProcessContext(settings, app)
    process.build()
    register_tasks(app, process)
    payload = {MESSAGE_FIELD: MESSAGE_VERSION, "account_sid": rec.account_sid, "recording_sid": rec.sid,
               "date": "2026-11-30", "attempt": 1}
    asked = len(sim.state.requests)

    with caplog.at_level(logging.WARNING, logger="recvault.worker"):
        assert app.tasks[REFRESH_TASK].apply(args=(payload,), task_id="refresh-1").get() == "newer-version"

    assert archive_env.store.get_bytes(key) == written  # not rewritten
    assert len(sim.state.requests) == asked  # nothing asked of Twilio either
    [record] = [r for r in caplog.records if r.getMessage() == "newer version handed back"]
    assert (record.levelno, record.task_id, record.what, record.version, record.key) == (
        logging.WARNING, "refresh-1", "document", DOCUMENT_VERSION + 1, key)
    [copy] = queued(redis_url)  # handed back for a worker that knows the document's schema
    assert copy["payload"] == payload and copy["headers"]["id"] == "refresh-1"
    assert dead_letters(redis_url) == []


def test_an_archive_that_finds_a_newer_schema_document_leaves_it_as_it_is(
        sim, archive_env, newer_document, caplog) -> None:
    rec, key, written = newer_document
    archive_env.options = ArchiveOptions(delete_after_archive=True)  # the rewrite that could have followed
    with caplog.at_level(logging.WARNING, logger="recvault.worker"):
        result = archive_env.archive(rec)
    assert (result.outcome, result.key, result.price_pending) == ("already-archived", key, False)
    assert archive_env.store.get_bytes(key) == written and not rec.deleted
    [record] = [r for r in caplog.records if r.name == "recvault.worker" and r.levelno == logging.WARNING]
    assert record.getMessage() == "already archived by a newer release; its document is left as it is"
    assert (record.key, record.version) == (key, DOCUMENT_VERSION + 1)


def test_documents_and_messages_of_this_release_carry_their_versions(
        settings, sim, archive_env, redis_url) -> None:
    rec = sim.create_recording(duration=5, price_delay=3600)
    document = json.loads(archive_env.store.get_bytes(archive_env.archive(rec).key))
    event = archive_env.archive(sim.create_recording(duration=5), "absent")
    assert document[DOCUMENT_FIELD] == DOCUMENT_VERSION
    assert json.loads(archive_env.store.get_bytes(event.key))[DOCUMENT_FIELD] == DOCUMENT_VERSION

    from recvault.workers.beat_schedule import beat_schedule, job_key
    from recvault.workers.price_refresh import RefreshTarget
    assert RefreshTarget(ACCOUNT, rec.sid, "2026-11-30").payload(attempt=1)[MESSAGE_FIELD] == MESSAGE_VERSION
    for entry in beat_schedule().values():
        payload = entry["args"][0]()
        assert payload[MESSAGE_FIELD] == MESSAGE_VERSION
        # A job's dedup key is the one an earlier release's beat gave it: no job goes out twice in an upgrade.
        earlier = {name: value for name, value in payload.items() if name != MESSAGE_FIELD}
        assert job_key(entry["task"], payload) == job_key(entry["task"], earlier)
    beat = next(f for f in PREVIOUS if f["name"] == "921b7c9-beat-reconcile")
    assert job_key(beat["task"], {MESSAGE_FIELD: MESSAGE_VERSION, **beat["payload"]}) == beat["dedup_key"]
