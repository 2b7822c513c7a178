"""Text logs (RECVAULT_LOG_FORMAT=text, or auto on a terminal) carry the context a JSON line carries."""

from __future__ import annotations

import json
import logging
import os
import re
import sys

import pytest

from recvault.launch.process import Component
from recvault.logs import JsonFormatter, TextFormatter
from recvault.queue.celery_factory import create_celery
from recvault.queue.writer import QueueWriter, build_message
from recvault.settings import Settings
from recvault.simulator.callbacks import callback_params
from tests.fixtures.worker import wait_for


def record(message: str, *args: object, **extra: object) -> logging.LogRecord:
    made = logging.LogRecord("recvault.worker", logging.INFO, __file__, 1, message, args or None, None)
    made.__dict__.update(extra)
    return made


def test_a_text_line_ends_with_its_context_recording_and_key_first() -> None:
    line = TextFormatter().format(record("archived", bytes=1024, key="media/2026/03/01/RE1.wav", sha256="ab12",
                                         recording_sid="RE1", task_id="t-1"))
    assert line.endswith(" INFO recvault.worker archived recording_sid=RE1 key=media/2026/03/01/RE1.wav task_id=t-1 "
                         "bytes=1024 sha256=ab12")


def test_values_that_would_be_ambiguous_are_quoted_as_json() -> None:
    line = TextFormatter().format(record("retrying", error="503 from Twilio", kind="TwilioUnavailable",
                                         retry_in=1.5, labels={"tenant": "acme"}, code=None, empty=""))
    assert line.endswith(' retrying error="503 from Twilio" kind=TwilioUnavailable retry_in=1.5 '
                         'labels={"tenant": "acme"} code=null empty=""')


def test_a_line_without_context_is_the_message_alone_and_a_traceback_follows_the_context() -> None:
    assert TextFormatter().format(record("worker ready")).endswith(" INFO recvault.worker worker ready")
    try:
        raise ValueError("boom")
    except ValueError:
        failed = record("failed", recording_sid="RE2")
        failed.exc_info = sys.exc_info()
    first, *rest = TextFormatter().format(failed).splitlines()
    assert first.endswith("failed recording_sid=RE2") and rest[-1] == "ValueError: boom"


def test_context_that_only_repeats_the_messages_arguments_is_left_out() -> None:
    # Celery logs "Task %(name)s[%(id)s] received" with its context both as the arguments and as `data`.
    context = {"name": "recvault.archive", "id": "t-9"}
    line = TextFormatter().format(record("Task %(name)s[%(id)s] received", context, data=context))
    assert line.endswith("Task recvault.archive[t-9] received")
    entry = json.loads(JsonFormatter().format(record("Task %(name)s received", context, data=context)))
    assert entry["data"] == context  # JSON lines keep every field


@pytest.mark.system  # a real worker process
def test_a_worker_logging_text_names_the_recording_and_the_key_on_each_line(redis_url, s3_store, sim, sim_account,
                                                                             tmp_path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RECVAULT_")}
    env.update(RECVAULT_BROKER_URL=redis_url, RECVAULT_WORKER_METRICS_PORT="0",
               RECVAULT_S3_ENDPOINT_URL=s3_store.endpoint_url, RECVAULT_S3_BUCKET=s3_store.bucket,
               RECVAULT_TWILIO_AUTH_TOKENS=sim_account.token, RECVAULT_TWILIO_API_BASE_URL=sim.base_url,
               RECVAULT_DATA_DIR=str(tmp_path), RECVAULT_LOG_FORMAT="text", PYTHONUNBUFFERED="1")
    log = tmp_path / "worker.log"
    worker = Component("worker", ["worker", "--processes", "1", "-c", "2"], env, log_path=log).start(wait=False)
    try:
        wait_for(lambda: b" ready." in log.read_bytes() or not worker.running, timeout=60, what="the worker")
        assert worker.running, log.read_text()[-2000:]
        rec = sim.create_recording(duration=2, source="DialVerb")
        app = create_celery(Settings(broker_url=redis_url))
        writer = QueueWriter.for_app(app, "recvault", 60, timeout=2, connect_timeout=2)
        message = build_message(app, "recvault", f"{rec.sid}:completed",
                                {"params": callback_params(rec, "completed", api_base=sim.base_url)})
        assert writer.enqueue([message]) == [True]
        writer.close()
        line = wait_for(lambda: next((line for line in log.read_text().splitlines()
                                      if " INFO recvault.worker archived " in line), None),
                        timeout=60, what="the archived line")
        assert re.search(rf" archived recording_sid={rec.sid} key=\S*{rec.sid}\S* ", line), line
        done = next(line for line in log.read_text().splitlines() if " task done " in line)
        assert re.search(rf" task done recording_sid={rec.sid} task_id=\S+ ", done), done
    finally:
        worker.stop()
