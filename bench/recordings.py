"""Simulated recordings for the archive benchmarks: created in the simulator, queued, awaited in S3."""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import replace
from datetime import UTC, datetime

from bench.stack import QUEUE, Stack, post_json
from recvault import layout
from recvault.queue.celery_factory import create_celery
from recvault.queue.writer import QueueWriter, build_message
from recvault.settings import Settings
from recvault.simulator.callbacks import callback_params
from recvault.simulator.control import recording_to_json
from recvault.simulator.media import media_size
from recvault.simulator.recordings import Faults, SimRecording

CONTROL_BATCH = 1000


def create(stack: Stack, count: int, *, channels: int, duration: int,
           faults: Faults | None = None) -> list[SimRecording]:
    """Register `count` completed recordings with the simulator (each with `faults`, if given)."""
    recordings = [SimRecording(account_sid=stack.account_sid, channels=channels, duration=duration,
                               faults=replace(faults) if faults else Faults())
                  for _ in range(count)]
    for start in range(0, count, CONTROL_BATCH):
        post_json(f"{stack.sim_url}/_sim/recordings",
                  [recording_to_json(r) for r in recordings[start:start + CONTROL_BATCH]])
    return recordings


def size_of(recording: SimRecording) -> int:
    """Bytes of the WAV file the worker downloads and stores."""
    return media_size(recording.sid, "wav", recording.channels, recording.duration)


def params(stack: Stack, recording: SimRecording) -> dict[str, str]:
    """The `completed` callback Twilio would send for it."""
    return callback_params(recording, "completed", api_base=stack.sim_url)


def metadata_key(recording: SimRecording) -> str:
    """Where the worker writes its metadata document (recvault's deterministic key)."""
    assert recording.start_time is not None
    date = recording.start_time.astimezone(UTC).strftime("%Y-%m-%d")
    return layout.metadata_key("", date, recording.sid)


class Enqueuer:
    """Puts archive tasks on the queue exactly as ingest does (same message, same Lua script)."""

    def __init__(self, stack: Stack) -> None:
        settings = Settings(broker_url=stack.broker_url, queue=QUEUE)
        self._celery = create_celery(settings)
        self._writer = QueueWriter.for_app(self._celery, QUEUE, 3600, timeout=5, connect_timeout=5)
        self._stack = stack

    def enqueue(self, recordings: Iterable[SimRecording]) -> float:
        """Queue one task per recording; returns the wall-clock time just before."""
        received = datetime.now(UTC).isoformat()
        messages = [
            build_message(self._celery, QUEUE, f"{r.sid}:completed",
                          {"params": params(self._stack, r), "received_at": received,
                           "idempotency_token": None})
            for r in recordings
        ]
        started = time.time()
        self._writer.enqueue(messages)
        return started

    def close(self) -> None:
        self._writer.close()


def missing_documents(stack: Stack, recordings: Iterable[SimRecording]) -> list[str]:
    """SIDs whose metadata document is not in S3."""
    present = set(stack.store().list_keys("metadata/"))
    return [r.sid for r in recordings if metadata_key(r) not in present]
