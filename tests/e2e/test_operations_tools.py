"""A real `recvault worker` seen through operations tools: /metrics (checked by promtool), `celery -A …
inspect`, and task events — after a callback went through a real ingest into the archive."""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import threading
from pathlib import Path

import aiohttp
import pytest
from aiohttp.test_utils import TestServer
from prometheus_client.parser import text_string_to_metric_families

from recvault.commands.worker import node_name
from recvault.ingest.app import create_app
from recvault.launch.process import Component
from recvault.launch.services import free_port
from recvault.queue.celery_factory import create_celery
from recvault.settings import Settings
from recvault.simulator.callbacks import CallbackSender, callback_sequence
from tests.fixtures.worker import wait_for

# A worker process, an ingest, three Celery CLI runs: about 15 s, so the system tier.
pytestmark = pytest.mark.system


def promtool_problems(exposition: str) -> str:
    """What `promtool check metrics` says about an exposition ('' when nothing)."""
    try:
        result = subprocess.run(["promtool", "check", "metrics"], input=exposition, capture_output=True,
                                text=True, timeout=60)
    except FileNotFoundError:
        pytest.fail("promtool is required for this test (apt-get install prometheus)")
    return (result.stdout + result.stderr).strip() + ("" if result.returncode == 0 else f" (exit {result.returncode})")


def samples(exposition: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(exposition) for s in family.samples}


class EventLog:
    """Celery task events from the broker, captured on a thread as `celery events` would."""

    def __init__(self, settings: Settings) -> None:
        self.events: list[dict] = []
        self._app = create_celery(settings)
        self._receiver = None
        self._thread = threading.Thread(target=self._capture, daemon=True)
        self._ready = threading.Event()

    def _capture(self) -> None:
        with self._app.connection_for_read() as connection:
            self._receiver = self._app.events.Receiver(connection, handlers={"*": self.events.append})
            self._receiver.consume_from_start = True
            self._ready.set()
            self._receiver.capture(limit=None, timeout=None, wakeup=False)

    def __enter__(self) -> EventLog:
        self._thread.start()
        self._ready.wait(10)
        return self

    def __exit__(self, *exc: object) -> None:
        if self._receiver is not None:
            self._receiver.should_stop = True
        self._thread.join(10)

    def types(self) -> set[str]:
        return {event.get("type") for event in self.events}


async def test_a_worker_exposes_metrics_answers_celery_inspect_and_sends_task_events(
        redis_url, s3_store, sim, sim_account, tmp_path: Path) -> None:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("RECVAULT_")}
    env.update(RECVAULT_BROKER_URL=redis_url, RECVAULT_S3_ENDPOINT_URL=s3_store.endpoint_url,
               RECVAULT_S3_BUCKET=s3_store.bucket, RECVAULT_TWILIO_AUTH_TOKENS=sim_account.token,
               RECVAULT_TWILIO_API_BASE_URL=sim.base_url, RECVAULT_DATA_DIR=str(tmp_path / "worker"),
               RECVAULT_WORKER_METRICS_PORT=str(port), RECVAULT_WORKER_METRICS_HOST="127.0.0.1",
               RECVAULT_LOG_FORMAT="text", PYTHONUNBUFFERED="1")
    settings = Settings(_env_file=None, twilio_auth_tokens=sim_account.token, broker_url=redis_url,
                        data_dir=tmp_path / "ingest", twilio_api_base_url=sim.base_url)
    log = tmp_path / "worker.log"
    rec = sim.create_recording(duration=3, channels=2)
    worker = Component("worker", ["worker", "-c", "2"], env, log_path=log,
                       ready_url=f"http://127.0.0.1:{port}/metrics").start()
    try:
        await asyncio.to_thread(wait_for, lambda: b" ready." in log.read_bytes(), timeout=60, what="the worker")
        with EventLog(settings) as events:
            async with TestServer(create_app(settings)) as ingest:
                url = str(ingest.make_url("/twilio/recording-status"))
                async with CallbackSender(url, auth_token=sim_account.token) as sender:
                    sent = await sender.send_many([sender.prepare(p) for p in
                                                   callback_sequence(rec, api_base=sim.base_url)])
                assert {result.http_status for result in sent} == {204}
                await asyncio.to_thread(wait_for, lambda: list(s3_store.list_keys("metadata/")), timeout=60,
                                        what="the recording archived")
                async with aiohttp.ClientSession() as session:
                    async with session.get(ingest.make_url("/metrics")) as answer:
                        ingest_metrics = await answer.text()
            # Workers beat every 2 s while events are on: Flower shows them online.
            wanted = {"task-received", "task-started", "task-succeeded", "worker-heartbeat"}
            await asyncio.to_thread(wait_for, lambda: wanted <= events.types(), timeout=30, what="task events")

        async with aiohttp.ClientSession() as session:
            async with session.get(f"http://127.0.0.1:{port}/metrics") as answer:
                worker_metrics = await answer.text()
        figures = samples(worker_metrics)
        size = sim.expected(rec, "wav")[0]
        assert figures[("recvault_archived_recordings_total", ())] == 1
        assert figures[("recvault_archived_bytes_total", ())] == size
        assert figures[("recvault_callback_to_archive_seconds_count", ())] == 1
        assert figures[("recvault_task_seconds_count", (("task", "recvault.archive_event"),))] == 2
        assert figures[("recvault_tasks_total", (("outcome", "archived"), ("task", "recvault.archive_event")))] == 1
        assert figures[("recvault_archives_in_flight", ())] == 0
        assert samples(ingest_metrics)[("recvault_callbacks_accepted_total", (("outcome", "queued"),))] == 2
        assert promtool_problems(worker_metrics) == ""
        assert promtool_problems(ingest_metrics) == ""

        # `recvault worker` runs two worker processes by default, named from recvault@%h.
        nodes = [node_name(f"recvault@{socket.gethostname()}", index) for index in range(2)]
        node = nodes[0]
        for command in ("ping", "active"):
            inspect = await asyncio.to_thread(
                subprocess.run, [sys.executable, "-m", "celery", "-A", "recvault.queue.celery_app", "inspect",
                                 command, "--timeout", "10", "-d", node], env=env, capture_output=True, text=True,
                timeout=60)
            assert inspect.returncode == 0, inspect.stdout + inspect.stderr
            assert node in inspect.stdout
        every = (await asyncio.to_thread(
            subprocess.run, [sys.executable, "-m", "celery", "-A", "recvault.queue.celery_app", "inspect", "ping"],
            env=env, capture_output=True, text=True, timeout=60)).stdout
        assert every.count("pong") == 2 and all(name in every for name in nodes), every
    finally:
        worker.stop()
