"""Ingest fixtures: a real ingest server on a socket, backed by the real Redis."""

from __future__ import annotations

import base64
import json
import secrets
from collections.abc import AsyncIterator
from urllib.parse import urlencode

import pytest
import redis
from aiohttp.test_utils import TestClient, TestServer
from multidict import MultiDict
from twilio.request_validator import RequestValidator

from recvault.ingest.app import create_app
from recvault.settings import Settings

TOKEN = "f3b1c0d9e8a7f6e5d4c3b2a190817263"
# Shaped like a Twilio signature (28 base64 characters) but made by nobody: gets past the shape check.
FAKE_SIGNATURE = "c2lnbmF0dXJlIHRoYXQgZmFpbHM="
ACCOUNT = "AC" + "a" * 32


def callback_params(status: str = "completed", **overrides: str) -> dict[str, str]:
    """A realistic completed-recording callback."""
    recording = overrides.pop("RecordingSid", "RE" + secrets.token_hex(16))
    params = {
        "AccountSid": ACCOUNT,
        "CallSid": "CA" + secrets.token_hex(16),
        "RecordingSid": recording,
        "RecordingUrl": f"https://api.twilio.com/2010-04-01/Accounts/{ACCOUNT}/Recordings/{recording}",
        "RecordingStatus": status,
        "RecordingChannels": "2",
        "RecordingStartTime": "Wed, 20 Apr 2022 23:45:25 +0000",
        "RecordingSource": "StartCallRecordingAPI",
        "RecordingTrack": "both",
        "ErrorCode": "0",
    }
    if status == "completed":
        params["RecordingDuration"] = "42"
    params.update(overrides)
    return params


def sign(url: str, params, token: str = TOKEN) -> str:
    return RequestValidator(token).compute_signature(url, params)


@pytest.fixture
def ingest_settings(redis_url: str, tmp_path) -> Settings:
    return Settings(
        twilio_auth_tokens=f"{TOKEN},secondary-token-0123456789",
        broker_url=redis_url,
        data_dir=tmp_path,
        publish_timeout_seconds=0.5,
        redis_connect_timeout_seconds=0.5,
    )


@pytest.fixture
async def client(ingest_settings: Settings) -> AsyncIterator[TestClient]:
    async with TestClient(TestServer(create_app(ingest_settings))) as test_client:
        yield test_client


@pytest.fixture
def queue(redis_url: str) -> redis.Redis:
    return redis.Redis.from_url(redis_url)


def callback_url(client: TestClient, query: str = "") -> str:
    return str(client.make_url("/twilio/recording-status")) + (f"?{query}" if query else "")


async def post_callback(client: TestClient, params, *, token: str = TOKEN, headers=None):
    url = callback_url(client)
    form = MultiDict(params) if not isinstance(params, MultiDict) else params
    all_headers = {"X-Twilio-Signature": sign(url, form, token)}
    all_headers.update(headers or {})
    return await client.post(
        "/twilio/recording-status", data=urlencode(list(form.items())),
        headers={"Content-Type": "application/x-www-form-urlencoded", **all_headers},
    )


def queued_payloads(r: redis.Redis, queue_name: str = "recvault") -> list[dict]:
    """Decode every Celery message waiting on the queue into its task payload."""
    payloads = []
    for raw in r.lrange(queue_name, 0, -1):
        envelope = json.loads(raw)
        args, _kwargs, _embed = json.loads(base64.b64decode(envelope["body"]))
        payloads.append(args[0])
    return payloads


def callback_message(n: int, *, repeat: int = 0):
    """Event n's callback as ingest builds it, ledger row included; a repeat is Twilio sending it again."""
    from recvault.audit.ledger import ledger_row
    from recvault.queue.celery_factory import create_celery
    from recvault.queue.writer import build_message
    from recvault.settings import Settings

    app = create_celery(Settings(queue="recvault"))
    sid, received = f"RE{n}", f"2025-01-01T00:00:{repeat:02d}+00:00"
    payload = {"params": {"RecordingSid": sid, "RecordingStatus": "completed", "AccountSid": ACCOUNT},
               "labels": {}, "received_at": received}
    return build_message(app, "recvault", f"{sid}:completed", payload,
                         ledger=ledger_row(sid, "completed", ACCOUNT, received))
