"""A Redis kill -9 under the shipped settings loses no callback that ingest, on its defaults, answered 2xx.

The fault suite checks this (scenario 2) with ingest's Redis timeouts shortened to keep it
quick; here `recvault serve` runs with nothing but where Redis is, and Redis with the shipped
deploy/redis/redis.conf. Callbacks stream in while Redis is SIGKILLed and started again: every
one is answered 2xx within Twilio's 15 s, and each is queued exactly once (read back from
Redis's append-only file) once ingest's spool has drained.
"""

from __future__ import annotations

import os
import secrets
import threading
import time
from pathlib import Path

import pytest
import redis

from recvault.launch.process import Component
from recvault.launch.services import RedisServer, free_port
from recvault.simulator.callbacks import TIMEOUT_SECONDS, CallbackSender, callback_params
from recvault.simulator.recordings import SimRecording, new_sid
from tests.faults.ledger import QueueLedger
from tests.faults.traffic import Traffic, stream_during

pytestmark = pytest.mark.system

CALLBACKS = 240
STREAM_SECONDS = 8.0
KILL_AFTER_SECONDS, DOWN_SECONDS = 2.5, 3.0
QUEUE = "recvault"


def test_callbacks_answered_2xx_survive_a_redis_kill_with_the_shipped_settings(tmp_path: Path) -> None:
    server = RedisServer(tmp_path / "redis").start()
    account, token, port = new_sid("AC"), secrets.token_hex(16), free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RECVAULT_", "AWS_"))}
    env.update({"RECVAULT_TWILIO_ACCOUNT_SID": account, "RECVAULT_TWILIO_AUTH_TOKENS": token,
                "RECVAULT_BROKER_URL": server.url + "/0", "RECVAULT_DATA_DIR": str(tmp_path / "data")})
    ingest = Component("ingest", ["serve", "--port", str(port)], env, log_path=tmp_path / "ingest.log",
                       ready_url=f"http://127.0.0.1:{port}/healthz")
    url = f"http://127.0.0.1:{port}/twilio/recording-status"
    try:
        ingest.start(timeout=60)
        signer = CallbackSender(url, auth_token=token)
        prepared = [signer.prepare(callback_params(SimRecording(account_sid=account, duration=60), "completed",
                                                   api_base="https://api.twilio.com"))
                    for _ in range(CALLBACKS)]
        killed = threading.Event()

        def kill_and_restart() -> None:
            time.sleep(KILL_AFTER_SECONDS)
            server.kill()
            killed.set()
            time.sleep(DOWN_SECONDS)
            server.start()

        traffic = Traffic()
        answers = stream_during(url, token, prepared, STREAM_SECONDS, kill_and_restart)
        traffic.record(answers)
        assert killed.is_set()
        assert traffic.statuses.keys() <= {"200", "204"}, traffic.summary()
        assert max(answer.elapsed for answer in answers) < TIMEOUT_SECONDS
        _wait_queued(server, len(traffic.accepted))
    finally:
        ingest.stop()
        server.stop()
    pushes = QueueLedger.read(server.dir, QUEUE).pushes
    assert {event: pushes[event] for event in traffic.accepted} == dict.fromkeys(traffic.accepted, 1)


def _wait_queued(server: RedisServer, expected: int, timeout: float = 60) -> None:
    """Until the queue holds `expected` messages: ingest's spool has drained into the restarted Redis."""
    client = redis.Redis.from_url(server.url, socket_timeout=5)
    deadline = time.monotonic() + timeout
    try:
        while (queued := int(client.llen(QUEUE))) < expected:
            assert time.monotonic() < deadline, f"{queued} of {expected} callbacks queued after {timeout} s"
            time.sleep(0.25)
        assert queued == expected
    finally:
        client.close()
