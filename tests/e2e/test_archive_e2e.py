"""Callback to archive: simulator → ingest → Redis → real Celery worker → SeaweedFS."""

from __future__ import annotations

import asyncio
import json
from collections import Counter

import pytest
from aiohttp.test_utils import TestServer

from recvault.audit.append import read_chain
from recvault.ingest.app import create_app
from recvault.settings import Settings
from recvault.simulator.callbacks import CallbackSender, callback_sequence
from recvault.simulator.recordings import Faults
from recvault.workers.dead_letters import DeadLetters
from tests.fixtures.worker import running_worker, wait_for


@pytest.fixture
def e2e_settings(redis_url, tmp_path, sim, sim_account, s3_store) -> Settings:
    return Settings(
        twilio_auth_tokens=sim_account.token, twilio_account_sid=sim_account.sid,
        twilio_api_base_url=sim.base_url, broker_url=redis_url, data_dir=tmp_path,
        s3_bucket=s3_store.bucket, s3_endpoint_url=s3_store.endpoint_url, s3_part_size_mib=5,
        max_retries=5, retry_backoff_max_seconds=1, not_found_grace_seconds=30,
        price_refresh_seconds=1, queue="e2e",
    )


async def _send_callbacks(settings: Settings, token: str, plan, *, api_base: str, repeat: int = 2):
    async with TestServer(create_app(settings)) as server:
        url = str(server.make_url("/twilio/recording-status"))
        async with CallbackSender(url, auth_token=token) as sender:
            prepared = [sender.prepare(params) for rec, outcome in plan
                        for params in callback_sequence(rec, outcome, api_base=api_base)] * repeat
            return await sender.send_many(prepared)


def _documents(store, prefix: str) -> dict[str, dict]:
    return {json.loads(store.get_bytes(k))["sid"]: json.loads(store.get_bytes(k)) for k in store.list_keys(prefix)}


async def test_every_kind_of_recording_is_archived_once_with_matching_sha256(
        e2e_settings, sim, sim_account, s3_store) -> None:
    plan = [
        (sim.create_recording(channels=1, duration=4), "completed"),
        (sim.create_recording(channels=2, duration=6, source="DialVerb"), "completed"),
        (sim.create_recording(channels=2, duration=3, encrypted=True), "completed"),
        (sim.create_recording(conference_sid="CF" + "7" * 32, source="Conference", duration=5), "completed"),
        (sim.create_recording(channels=1, duration=2, faults=Faults(not_found_seconds=2)), "completed"),
        (sim.create_recording(status="absent", duration=0), "absent"),
        (sim.create_recording(status="failed", encrypted=True), "failed"),
    ]
    completed = [rec for rec, outcome in plan if outcome == "completed"]
    with running_worker(e2e_settings):
        results = await _send_callbacks(e2e_settings, sim_account.token, plan, api_base=sim.base_url)
        assert {r.http_status for r in results} == {204}
        await asyncio.to_thread(
            wait_for, lambda: len(list(s3_store.list_keys("metadata/"))) == len(completed)
            and len(list(s3_store.list_keys("events/"))) == len(plan) + 2,
            timeout=60, what="every document")
        await asyncio.sleep(1)  # a duplicate still in flight would show up now

    documents = _documents(s3_store, "metadata/")
    for rec in completed:
        size, sha256 = sim.expected(rec, "wav")
        assert documents[rec.sid]["media_sha256"] == sha256
        assert documents[rec.sid]["media_size"] == size
        assert documents[rec.sid]["status"] == "completed"
    assert documents[plan[2][0].sid]["encryption_details"] == plan[2][0].encryption_details
    assert documents[plan[3][0].sid]["call_sid"] is None
    media = list(s3_store.list_keys("media/"))
    assert len(media) == len(completed)  # duplicates made no second copy
    # events/date=…/RE<32 hex>-<status>.json
    events = Counter(k.rsplit("/", 1)[-1][35:-5] for k in s3_store.list_keys("events/"))
    assert events == {"in-progress": len(plan), "absent": 1, "failed": 1}
    assert s3_store.incomplete_uploads() == []


@pytest.mark.system  # covered again by the fault suite; kept out of the fast tier
@pytest.mark.parametrize(
    ("faults", "outcome"),
    [
        (Faults(rate_limited=2, retry_after_seconds=1), "archived"),
        (Faults(server_errors=2), "archived"),
        (Faults(cut_after_bytes=100_000, cut_times=2), "archived"),
        (Faults(wrong_length_times=1), "archived"),
        (Faults(slow_seconds=1.0), "archived"),
        (Faults(gone=True), "dead-letter"),
        (Faults(server_errors=50), "dead-letter"),
    ],
    ids=["429", "503", "cut", "wrong-length", "slow", "gone", "5xx-forever"],
)
async def test_twilio_faults_end_archived_or_dead_lettered_with_reason(
        e2e_settings, sim, sim_account, s3_store, redis_url, faults, outcome) -> None:
    if faults.gone:
        e2e_settings = e2e_settings.model_copy(update={"not_found_grace_seconds": 0})
    rec = sim.create_recording(duration=30, faults=faults)
    letters = DeadLetters.connect(redis_url)
    with running_worker(e2e_settings):
        await _send_callbacks(e2e_settings, sim_account.token, [(rec, "completed")], api_base=sim.base_url)
        done = lambda: list(s3_store.list_keys("metadata/")) or letters.get(f"{rec.sid}:completed")  # noqa: E731
        await asyncio.to_thread(wait_for, done, timeout=60, what="archive or dead letter")
    if outcome == "archived":
        document = _documents(s3_store, "metadata/")[rec.sid]
        assert document["media_sha256"] == sim.expected(rec, "wav")[1]
        assert letters.get(f"{rec.sid}:completed") is None
    else:
        letter = letters.get(f"{rec.sid}:completed")
        assert letter is not None and letter.reason
        assert letter.error in {"RecordingGone", "TwilioUnavailable"}
        assert list(s3_store.list_keys("media/")) == []
    assert s3_store.incomplete_uploads() == []


async def test_late_price_is_filled_in_by_the_refresh_task(e2e_settings, sim, sim_account, s3_store) -> None:
    rec = sim.create_recording(duration=90, price_delay=2.0)
    with running_worker(e2e_settings):
        await _send_callbacks(e2e_settings, sim_account.token, [(rec, "completed")], api_base=sim.base_url)

        def priced():
            documents = _documents(s3_store, "metadata/")
            return documents.get(rec.sid, {}).get("price")

        price = await asyncio.to_thread(wait_for, priced, timeout=30, what="price refresh")
    assert price == "-0.0050"
    document = _documents(s3_store, "metadata/")[rec.sid]
    assert document["price_unit"] == "USD" and document["price_updated_at"]
    assert any(e.action == "price-updated" for e in read_chain(s3_store, "", rec.sid)[0])


async def test_a_regional_account_archives_end_to_end(redis_url, tmp_path, sim, sim_account, s3_store) -> None:
    """IE1: callbacks name the Dublin API host; the worker fetches from the region's API base."""
    dublin = "https://api.dublin.ie1.twilio.com"
    settings = Settings(
        twilio_region="ie1", twilio_auth_tokens=sim_account.token, twilio_account_sid=sim_account.sid,
        # The simulator stands in for the regional API host (no network here).
        twilio_api_base_url=sim.base_url, broker_url=redis_url, data_dir=tmp_path,
        s3_bucket=s3_store.bucket, s3_endpoint_url=s3_store.endpoint_url, queue="e2e-ie1",
    )
    rec = sim.create_recording(channels=2, duration=4)
    with running_worker(settings):
        results = await _send_callbacks(settings, sim_account.token, [(rec, "completed")], api_base=dublin,
                                        repeat=1)
        assert {r.http_status for r in results} == {204}
        await asyncio.to_thread(wait_for, lambda: list(s3_store.list_keys("metadata/")), what="the archive")
    [document] = _documents(s3_store, "metadata/").values()
    assert document["callback"]["RecordingUrl"].startswith(dublin)
    assert (document["media_size"], document["media_sha256"]) == sim.expected(rec)
    # The same callback at a US1 deployment is refused: its credentials are not valid in IE1.
    us1 = Settings(twilio_auth_tokens=sim_account.token, twilio_api_base_url=sim.base_url, broker_url=redis_url,
                   data_dir=tmp_path / "us1", queue="e2e-us1")
    assert "api.dublin.ie1.twilio.com" not in us1.allowed_media_hosts
    refused = await _send_callbacks(us1, sim_account.token, [(sim.create_recording(), "completed")],
                                    api_base=dublin, repeat=1)
    assert [r.http_status for r in refused if r.recording_status == "completed"] == [400]
