"""`recvault simulate serve` and `send` as real processes, talking to a real receiver."""

from __future__ import annotations

import asyncio
import hashlib
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from twilio.request_validator import RequestValidator

from recvault.commands.simulate import run_simulate
from recvault.events import RecordingStatusEvent
from recvault.simulator.recordings import new_sid
from tests.simulator.support import free_port, running_receiver, wait_until_up

ACCOUNT = new_sid("AC")
TOKEN = "serve-token-" + new_sid("")[2:]


def clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RECVAULT_")}
    return {**env, **extra}


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[str, subprocess.Popen, Path]]:
    """`recvault simulate serve`, configured by the RECVAULT_ variables like `recvault up` does."""
    port, output = free_port(), tmp_path / "serve.log"
    with output.open("w") as log:
        child = subprocess.Popen(
            [sys.executable, "-m", "recvault.cli", "simulate", "serve", "--port", str(port)],
            env=clean_env(RECVAULT_TWILIO_ACCOUNT_SID=ACCOUNT, RECVAULT_TWILIO_AUTH_TOKENS=TOKEN),
            cwd=tmp_path, stdout=log, stderr=subprocess.STDOUT,
        )
    base = f"http://127.0.0.1:{port}"
    try:
        wait_until_up(base)
        yield base, child, output
    finally:
        child.terminate()
        child.wait(timeout=30)


async def test_send_creates_recordings_and_delivers_signed_callbacks(served, tmp_path: Path) -> None:
    base, server, server_log = served
    async with running_receiver() as receiver:
        sender = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "recvault.cli", "simulate", "send", "--to", receiver.url,
            "--count", "4", "--channels", "2", "--source", "mixed", "--method", "GET", "--duration", "3",
            "--api-base", base, "--account-sid", ACCOUNT, "--auth-token", TOKEN,
            env=clean_env(), cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        )
        out, err = await asyncio.wait_for(sender.communicate(), timeout=60)
    assert sender.returncode == 0, err.decode()
    assert "sent 8 callbacks for 4 recordings" in out.decode()
    assert TOKEN not in out.decode() + err.decode()
    assert [c["params"] for c in receiver.calls] == [{}] * 8  # GET: everything is in the query
    statuses = [RecordingStatusEvent.from_params(dict(_query(c["url"]))).recording_status for c in receiver.calls]
    assert statuses == ["in-progress"] * 4 + ["completed"] * 4
    validator = RequestValidator(TOKEN)
    assert all(validator.validate(c["url"], {}, c["headers"]["X-Twilio-Signature"]) for c in receiver.calls)
    completed = [dict(_query(c["url"])) for c in receiver.calls[4:]]
    assert len({c["RecordingSource"] for c in completed}) == 4
    for params in completed:  # every callback's RecordingUrl is downloadable from the simulator
        media = requests.get(params["RecordingUrl"] + ".wav", auth=(ACCOUNT, TOKEN), timeout=10)
        expected = requests.get(f"{base}/_sim/recordings/{params['RecordingSid']}/expected", timeout=10).json()
        assert hashlib.sha256(media.content).hexdigest() == expected["sha256"]
    server.terminate()
    server.wait(timeout=30)
    assert ACCOUNT in server_log.read_text() and TOKEN not in server_log.read_text()


async def test_demo_sends_three_varied_recordings(served, tmp_path: Path) -> None:
    base, _, _ = served
    async with running_receiver() as receiver:
        sender = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "recvault.cli", "simulate", "send", "--to", receiver.url, "--demo",
            env=clean_env(RECVAULT_TWILIO_ACCOUNT_SID=ACCOUNT, RECVAULT_TWILIO_AUTH_TOKENS=TOKEN,
                          RECVAULT_TWILIO_API_BASE_URL=base),
            cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        )
        out, err = await asyncio.wait_for(sender.communicate(), timeout=60)
    assert sender.returncode == 0, err.decode()
    finals = [c["params"] for c in receiver.calls if c["params"]["RecordingStatus"] == "completed"]
    assert sorted((p["RecordingSource"], p["RecordingChannels"]) for p in finals) == [
        ("Conference", "1"), ("DialVerb", "1"), ("StartCallRecordingAPI", "2")]
    assert all(p["RecordingUrl"].startswith(base + "/2010-04-01/") for p in finals)
    assert TOKEN not in out.decode() + err.decode()


def test_missing_credentials_are_named() -> None:
    with pytest.raises(SystemExit, match="--account-sid and --auth-token"):
        run_simulate(["serve", "--port", str(free_port())])


def test_send_to_a_missing_simulator_fails_clearly() -> None:
    with pytest.raises(SystemExit, match="no simulator at"):
        run_simulate(["send", "--to", "http://127.0.0.1:9/cb", "--api-base", f"http://127.0.0.1:{free_port()}",
                      "--account-sid", ACCOUNT, "--auth-token", TOKEN])


def _query(url: str) -> list[tuple[str, str]]:
    from urllib.parse import parse_qsl, urlsplit

    return parse_qsl(urlsplit(url).query)
