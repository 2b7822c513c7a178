"""`recvault beat`: jobs published once each through the queue writer, and their task bodies on real services."""

from __future__ import annotations

import base64
import json
import os
import time
from datetime import UTC, datetime, timedelta

import pytest
import redis

from recvault import layout
from recvault.cli import main
from recvault.launch.process import Component
from recvault.queue import kombu_redis
from recvault.queue.celery_factory import PRICE_SWEEP_TASK, RECONCILE_TASK, REFRESH_TASK, create_celery
from recvault.settings import Settings
from recvault.versions import MESSAGE_VERSION
from recvault.workers.beat_schedule import PRICE_SWEEP_DAYS, WriterScheduler, beat_schedule
from recvault.workers.context import ProcessContext
from recvault.workers.tasks import register_tasks
from tests.fixtures.worker import wait_for

DAY = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)


def queued(redis_url: str, queue: str = "recvault") -> list[dict]:
    """The messages on the queue, oldest first: task name, payload and delivery tag."""
    messages = []
    for raw in reversed(redis.Redis.from_url(redis_url).lrange(queue, 0, -1)):
        envelope = json.loads(raw)
        args, _, _ = json.loads(base64.b64decode(envelope["body"]))
        messages.append({"task": envelope["headers"]["task"], "payload": args[0],
                         "tag": envelope["properties"]["delivery_tag"]})
    return messages


def test_beat_help_and_a_short_run_start_and_stop_cleanly(redis_url, tmp_path, capsys) -> None:
    with pytest.raises(SystemExit) as shown:
        main(["beat", "--help"])
    assert shown.value.code == 0 and "reconcile of the previous day and the price sweep" in capsys.readouterr().out

    env = {k: v for k, v in os.environ.items() if not k.startswith("RECVAULT_")}
    env.update(RECVAULT_BROKER_URL=redis_url, RECVAULT_DATA_DIR=str(tmp_path / "data"))
    beat = Component("beat", ["beat"], env, log_path=tmp_path / "beat.log").start()
    wait_for(lambda: "beat: Starting" in (tmp_path / "beat.log").read_text(), timeout=30, what="beat to start")
    time.sleep(0.5)  # inside its loop
    assert beat.running
    beat.stop(timeout=15)
    assert beat.process is not None and beat.process.returncode == 0  # SIGTERM: schedule saved, exit 0
    log = (tmp_path / "beat.log").read_text()
    assert "Traceback" not in log and "error" not in log.lower()
    assert list((tmp_path / "data").glob("beat-schedule*"))
    assert queued(redis_url) == []  # nothing is due at start


def test_each_due_job_is_queued_once_with_a_pending_record_whatever_runs_it(redis_url, tmp_path) -> None:
    app = create_celery(Settings(broker_url=redis_url))
    app.conf.beat_schedule = beat_schedule()
    # Two beats by mistake (or one restarted after publishing): each job still goes out once a day.
    schedulers = [WriterScheduler(app=app, schedule_filename=str(tmp_path / f"schedule-{n}")) for n in (1, 2)]
    for scheduler in schedulers:
        for name in ("reconcile-previous-day", "price-sweep"):
            scheduler.apply_entry(scheduler.schedule[name])
    yesterday = (datetime.now(UTC).date() - timedelta(days=1))
    messages = queued(redis_url)
    assert [(m["task"], m["payload"]) for m in messages] == [
        (RECONCILE_TASK, {"v": MESSAGE_VERSION, "date_from": yesterday.isoformat(),
                          "date_to": yesterday.isoformat()}),
        (PRICE_SWEEP_TASK, {"v": MESSAGE_VERSION, "dates": [(yesterday - timedelta(days=n)).isoformat()
                                                            for n in reversed(range(PRICE_SWEEP_DAYS))]}),
    ]
    keys = kombu_redis.RedisKeys.for_queue("recvault", app.conf.broker_transport_options)
    client = redis.Redis.from_url(redis_url)
    assert all(client.hexists(keys.unacked, m["tag"]) for m in messages)  # restorable if a worker dies taking it
    for scheduler in schedulers:
        scheduler.close()


@pytest.fixture
def settings(sim, sim_account, s3_store, s3_endpoint, redis_url, tmp_path) -> Settings:
    return Settings(twilio_account_sid=sim_account.sid, twilio_auth_tokens=sim_account.token,
                    twilio_api_base_url=sim.base_url, broker_url=redis_url, s3_bucket=s3_store.bucket,
                    s3_endpoint_url=s3_endpoint, data_dir=tmp_path, price_refresh_attempts=3)


def run_task(settings: Settings, task: str, payload: dict) -> str:
    """The task's body as a worker runs it (delivery policy included), here and now."""
    app = create_celery(settings)
    process = ProcessContext(settings, app)
    process.build()
    register_tasks(app, process)
    return app.tasks[task].apply(args=(payload,)).get()


def test_the_scheduled_reconcile_queues_each_missing_recording_of_the_day_once(settings, sim, archive_env,
                                                                               redis_url) -> None:
    archived = sim.create_recording(date_created=DAY, duration=2)
    archive_env.archive(archived)
    missing = [sim.create_recording(date_created=DAY + timedelta(minutes=n), duration=2) for n in (1, 2)]
    sim.create_recording(date_created=DAY + timedelta(days=1), duration=2)  # another day
    window = {"date_from": "2026-03-02", "date_to": "2026-03-02"}

    assert run_task(settings, RECONCILE_TASK, window) == "2 missing"
    assert sorted(m["payload"]["params"]["RecordingSid"] for m in queued(redis_url)) == sorted(r.sid for r in missing)
    assert run_task(settings, RECONCILE_TASK, window) == "2 missing"  # run again: nothing queued twice
    assert len(queued(redis_url)) == 2
    assert run_task(settings, RECONCILE_TASK, {"date_from": "yesterday"}) == "dead-lettered"


def test_the_price_sweep_gives_recordings_still_unpriced_one_more_refresh(settings, sim, archive_env,
                                                                         redis_url) -> None:
    priced = sim.create_recording(date_created=DAY, duration=2)
    late = sim.create_recording(date_created=DAY, duration=70, price_delay=3600)  # Twilio has no price yet
    archive_env.archive(priced)
    result = archive_env.archive(late)
    assert json.loads(archive_env.store.get_bytes(result.key))["price"] is None
    late.price_delay = 0  # a day later, Twilio has it

    sweep = {"dates": ["2026-03-01", "2026-03-02"]}
    assert run_task(settings, PRICE_SWEEP_TASK, sweep) == "1 refresh(es) queued"
    assert run_task(settings, PRICE_SWEEP_TASK, sweep) == "0 refresh(es) queued"  # once per sweep
    [message] = queued(redis_url)
    assert message["task"] == REFRESH_TASK
    assert message["payload"] == {"v": MESSAGE_VERSION, "account_sid": late.account_sid, "recording_sid": late.sid,
                                  "date": "2026-03-02", "attempt": 3}  # the chain's last attempt
    assert run_task(settings, REFRESH_TASK, message["payload"]) == "refreshed"  # as a worker runs it
    document = json.loads(archive_env.store.get_bytes(result.key))
    assert document["price"] == "-0.0050"  # 70 s: two started minutes at $0.0025
    assert layout.metadata_key("", "2026-03-02", late.sid) == result.key



def test_beat_seals_the_audit_trail_and_flushes_the_accepted_ledger(settings, s3_store, redis_url) -> None:
    from celery.schedules import crontab

    from recvault.audit.ledger import ledger_row
    from recvault.audit.write import write_audit
    from recvault.queue.celery_factory import LEDGER_FLUSH_TASK, SEAL_TASK
    from recvault.workers.beat_schedule import LEDGER_FLUSH_AT, SEAL_AT, ledger_flush_payload, seal_payload

    schedule = beat_schedule()
    assert schedule["seal-audit-periods"]["task"] == SEAL_TASK and schedule["seal-audit-periods"]["schedule"] == SEAL_AT
    assert SEAL_AT == crontab(minute="*/5") and LEDGER_FLUSH_AT == crontab(minute="*/15")
    assert schedule["flush-accepted-ledger"]["schedule"] == LEDGER_FLUSH_AT
    assert seal_payload()["slot"] and ledger_flush_payload()["slot"]  # a dedup key per run

    yesterday = datetime.now(UTC) - timedelta(days=1)
    write_audit(s3_store, "", "RE" + "1" * 32, "archived", {}, None, yesterday)
    sealed = run_task(settings, SEAL_TASK, seal_payload())
    assert sealed.endswith(" period(s) sealed") and int(sealed.split()[0]) > 0  # every hour since yesterday's first
    assert run_task(settings, SEAL_TASK, seal_payload()) == "0 period(s) sealed"
    client = redis.Redis.from_url(redis_url)
    client.xadd("recvault:accepted", {"r": ledger_row("RE" + "1" * 32, "completed", "AC" + "1" * 32,
                                                      yesterday.isoformat())})
    assert run_task(settings, LEDGER_FLUSH_TASK, ledger_flush_payload()) == "1 accepted row(s) flushed"
    assert client.xlen("recvault:accepted") == 0
    assert len(list(s3_store.list_keys(f"audit/accepted/date={yesterday:%Y-%m-%d}/"))) == 1
