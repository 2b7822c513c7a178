"""archive_event against the real Twilio simulator and the real SeaweedFS."""

from __future__ import annotations

import json
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest

from recvault import documents as docs
from recvault import layout
from recvault.audit.append import read_chain
from recvault.compliance.policy import Policy
from recvault.errors import (
    ForeignHost,
    IntegrityFailed,
    MediaNotReady,
    RecordingGone,
    StorageUnavailable,
    TwilioAuthFailed,
    TwilioUnavailable,
)
from recvault.simulator.media import media_sha256, media_size
from recvault.simulator.recordings import Faults
from recvault.twilio.api import TwilioApi
from recvault.twilio.deletion import delete_verified
from recvault.workers.archive import ArchiveOptions


def _document(env, result) -> dict:
    return json.loads(env.store.get_bytes(result.key))


def _media_requests(sim, sid: str) -> list:
    return [r for r in sim.state.requests if sid in r.path and not r.path.endswith(".json")]


@pytest.mark.parametrize("channels", [1, 2])
def test_completed_recording_is_archived_with_matching_sha256_and_every_field(archive_env, sim, channels) -> None:
    recording = sim.create_recording(channels=channels, duration=7)
    result = archive_env.archive(recording)

    assert result.outcome == "archived"
    document = _document(archive_env, result)
    assert set(docs.RECORDING_FIELDS) <= set(document)
    assert document["sid"] == recording.sid and document["channels"] == channels
    assert document["media_sha256"] == media_sha256(recording.sid, "wav", channels, 7)
    assert document["media_size"] == media_size(recording.sid, "wav", channels, 7)
    assert document["media_check"] == "ok" and document["media_channels"] == channels
    assert document["media_duration_seconds"] == 7
    assert recording.sid in document["media_key"] and document["media_key"].endswith(".wav")
    head = archive_env.store.head(document["media_key"])
    assert head.size == document["media_size"] and head.version_id == document["media_version_id"]
    assert head.retention.mode == "GOVERNANCE"
    assert head.metadata["recording-sid"] == recording.sid
    assert document["retention_mode"] == "GOVERNANCE" and document["policy"] == "default"


def test_dual_recording_without_a_dual_version_falls_back_to_mono(archive_env, sim) -> None:
    recording = sim.create_recording(channels=2, duration=3, faults=Faults(dual_unavailable=True))
    document = _document(archive_env, archive_env.archive(recording))
    assert document["requested_channels"] == 1 and document["media_channels"] == 1
    assert document["media_sha256"] == media_sha256(recording.sid, "wav", 1, 3)
    assert "channels 1 != 2" not in document["media_check"]  # compared with what was asked


def test_mp3_when_configured(archive_env, sim) -> None:
    archive_env.options = ArchiveOptions(media_format="mp3")
    recording = sim.create_recording(duration=5)
    document = _document(archive_env, archive_env.archive(recording))
    assert document["media_key"].endswith(".mp3") and document["content_type"] == "audio/mpeg"
    assert document["media_sha256"] == media_sha256(recording.sid, "mp3", 1, 5)


def test_encrypted_recording_is_kept_as_wav_ciphertext_with_its_details(archive_env, sim) -> None:
    archive_env.options = ArchiveOptions(media_format="mp3")
    recording = sim.create_recording(duration=4, encrypted=True)
    document = _document(archive_env, archive_env.archive(recording))
    assert document["media_format"] == "wav"
    assert document["encryption_details"] == recording.encryption_details
    assert document["media_check"] == "not-applicable"
    assert document["media_sha256"] == media_sha256(recording.sid, "wav", 1, 4)


def test_conference_recording_without_call_sid(archive_env, sim) -> None:
    recording = sim.create_recording(call_sid=None, conference_sid="CF" + "3" * 32, source="Conference")
    document = _document(archive_env, archive_env.archive(recording))
    assert document["call_sid"] is None and document["conference_sid"] == "CF" + "3" * 32
    assert document["source"] == "Conference"


@pytest.mark.parametrize("status", ["in-progress", "absent", "failed"])
def test_other_statuses_are_recorded_without_any_download(archive_env, sim, status) -> None:
    recording = sim.create_recording(status=status, error_code=16102 if status == "absent" else None)
    extra = {"ErrorCode": "16102"} if status == "absent" else {}
    result = archive_env.archive(recording, status, **extra)
    assert result.outcome == "event-recorded" and f"{recording.sid}-{status}" in result.key
    document = json.loads(archive_env.store.get_bytes(result.key))
    assert document["status"] == status
    if status == "absent":
        assert document["error_code"] == 16102
    assert [r for r in sim.state.requests if recording.sid in r.path] == []
    assert archive_env.archive(recording, status, **extra).outcome == "already-archived"


def test_archiving_twice_makes_no_second_copy(archive_env, sim) -> None:
    recording = sim.create_recording(duration=2)
    first = archive_env.archive(recording)
    second = archive_env.archive(recording)
    assert (first.outcome, second.outcome) == ("archived", "already-archived")
    keys = list(archive_env.store.list_keys("media/"))
    assert len(keys) == 1
    # No look before the work: the create-only write of the media is what finds the archive.
    assert len(_media_requests(sim, recording.sid)) == 2
    archived = [e for e in read_chain(archive_env.store, "", recording.sid)[0] if e.action == "archived"]
    assert len(archived) == 1


def test_media_stored_before_a_crash_is_reused_not_duplicated(archive_env, sim) -> None:
    recording = sim.create_recording(duration=3)
    resource = archive_env.twilio.fetch_recording(archive_env.event(recording).recording_url, recording.account_sid)
    date = docs.recording_date(resource["start_time"], datetime.now(UTC))
    key = layout.media_key("", date, recording.account_sid, recording.sid, "wav")
    with archive_env.twilio.open_media(archive_env.event(recording).recording_url, recording.account_sid,
                                       fmt="wav", channels=1) as media:
        archive_env.store.put_stream(key, media.chunks, content_type="audio/x-wav")

    document = _document(archive_env, archive_env.archive(recording))
    assert document["media_key"] == key
    assert document["media_sha256"] == media_sha256(recording.sid, "wav", 1, 3)
    assert len(list(archive_env.store.list_keys("media/"))) == 1


def test_404_right_after_completion_is_transient_then_archives(archive_env, sim) -> None:
    recording = sim.create_recording(duration=2, faults=Faults(not_found_seconds=1.5))
    with pytest.raises(MediaNotReady):
        archive_env.archive(recording)
    time.sleep(1.6)
    assert archive_env.archive(recording).outcome == "archived"


def test_404_long_after_the_callback_means_gone(archive_env, sim) -> None:
    recording = sim.create_recording(faults=Faults(gone=True))
    with pytest.raises(MediaNotReady):
        archive_env.archive(recording)
    long_ago = datetime.now(UTC) - timedelta(hours=1)
    with pytest.raises(RecordingGone):
        archive_env.archive(recording, received_at=long_ago)


@pytest.mark.parametrize(
    ("faults", "message"),
    [
        (Faults(rate_limited=1, retry_after_seconds=7), "429"),
        (Faults(server_errors=1), "503"),
        (Faults(cut_after_bytes=70_000, cut_times=1), "cut"),
        (Faults(wrong_length_times=1), "bytes"),
    ],
)
def test_transient_twilio_faults_leave_nothing_behind_then_archive(archive_env, sim, faults, message) -> None:
    recording = sim.create_recording(duration=20, faults=faults)
    with pytest.raises(TwilioUnavailable, match=message) as caught:
        archive_env.archive(recording)
    if faults.rate_limited:
        assert caught.value.retry_after == 7
    assert list(archive_env.store.list_keys("media/")) == []
    assert archive_env.store.incomplete_uploads() == []
    document = _document(archive_env, archive_env.archive(recording))
    assert document["media_sha256"] == media_sha256(recording.sid, "wav", 1, 20)


def test_wrong_credentials_are_permanent(archive_env, sim, sim_account) -> None:
    archive_env.twilio = TwilioApi(base_url=sim.base_url, allowed_hosts=archive_env.twilio._allowed,
                                   credentials=lambda account: (sim_account.sid, "not-the-token"))
    with pytest.raises(TwilioAuthFailed):
        archive_env.archive(sim.create_recording())


def test_foreign_host_gets_no_request_and_no_credentials(archive_env, sim) -> None:
    recording = sim.create_recording()
    event = archive_env.event(recording)
    foreign = event.recording_url.replace("127.0.0.1", "localhost")
    before = len(sim.state.requests)
    with pytest.raises(ForeignHost):
        archive_env.twilio.fetch_recording(foreign, recording.account_sid)
    assert len(sim.state.requests) == before


def test_price_filled_in_later_as_a_new_document_version(archive_env, sim) -> None:
    recording = sim.create_recording(duration=61, price_delay=1.0)
    result = archive_env.archive(recording)
    assert result.price_pending and _document(archive_env, result)["price"] is None
    assert not archive_env.refresh(recording, result)
    time.sleep(1.1)
    assert archive_env.refresh(recording, result)
    document = _document(archive_env, result)
    assert document["price"] == "-0.0050" and document["price_unit"] == "USD"
    assert document["media_sha256"] == media_sha256(recording.sid, "wav", 1, 61)


def test_delete_after_archive_happens_only_after_verification(archive_env, sim) -> None:
    archive_env.options = ArchiveOptions(delete_after_archive=True)
    recording = sim.create_recording(duration=2)
    result = archive_env.archive(recording)
    assert result.deleted_from_twilio and recording.deleted
    document = _document(archive_env, result)
    assert document["twilio_deleted_at"] is not None
    actions = [entry.action for entry in read_chain(archive_env.store, "", recording.sid)[0]]
    assert actions == ["archived", "deleted-from-twilio"]


def test_delete_waits_for_the_price_when_it_is_pending(archive_env, sim) -> None:
    archive_env.options = ArchiveOptions(delete_after_archive=True)
    recording = sim.create_recording(duration=2, price_delay=0.5)
    result = archive_env.archive(recording)
    assert result.price_pending and not recording.deleted
    time.sleep(0.6)
    assert archive_env.refresh(recording, result)
    assert recording.deleted and _document(archive_env, result)["price"] is not None


def test_no_delete_when_the_archived_copy_does_not_match(archive_env, sim) -> None:
    archive_env.policy = Policy.from_dict({"default": {"mode": "none"}})
    recording = sim.create_recording(duration=2)
    result = archive_env.archive(recording)
    document = _document(archive_env, result)
    tampered = {**document, "media_checksum_sha256": "AAAA-1"}
    archive_env.store.put_bytes(result.key, layout.json_line(tampered), content_type="application/json",
                                create_only=False)
    with pytest.raises(IntegrityFailed):
        delete_verified(archive_env.twilio, archive_env.store, recording.account_sid, recording.sid, result.key, "",
                        lambda: datetime.now(UTC))
    assert not recording.deleted


def test_an_upload_left_by_a_killed_worker_is_aborted_on_retry(archive_env, sim) -> None:
    # Only media of at least one part (5 MiB here) goes multipart: 330 s of mono is 5.28 MB.
    recording = sim.create_recording(duration=330)
    resource = archive_env.twilio.fetch_recording(archive_env.event(recording).recording_url, recording.account_sid)
    date = docs.recording_date(resource["start_time"], datetime.now(UTC))
    key = layout.media_key("", date, recording.account_sid, recording.sid, "wav")
    # What a worker killed after starting its multipart upload leaves behind.
    archive_env.store._client.create_multipart_upload(Bucket=archive_env.store.bucket, Key=key,
                                                      ChecksumAlgorithm="SHA256")
    assert len(archive_env.store.incomplete_uploads()) == 1
    archive_env.archive(recording)
    assert archive_env.store.incomplete_uploads() == []


def test_downloads_with_an_api_key_when_one_is_configured(archive_env, sim, sim_api_key) -> None:
    from recvault.settings import Settings

    settings = Settings(twilio_api_key_sid=sim_api_key.sid, twilio_api_key_secret=sim_api_key.secret,
                        twilio_auth_tokens="unused-token-0123456789")
    archive_env.twilio = TwilioApi(base_url=sim.base_url, allowed_hosts=archive_env.twilio._allowed,
                                   credentials=settings.download_credentials)
    recording = sim.create_recording(duration=2)
    assert archive_env.archive(recording).outcome == "archived"
    principals = {r.principal for r in sim.state.requests if recording.sid in r.path}
    assert principals == {sim_api_key.sid}  # the key, not the AccountSid + Auth Token
    assert {r.auth for r in sim.state.requests} == {"valid"}


def test_a_delete_interrupted_after_the_document_is_finished_on_redelivery(archive_env, sim) -> None:
    recording = sim.create_recording(duration=2)
    archive_env.archive(recording)  # archived while deletion was off (or the worker died here)
    assert not recording.deleted
    archive_env.options = ArchiveOptions(delete_after_archive=True)
    result = archive_env.archive(recording)
    assert result.outcome == "already-archived" and result.deleted_from_twilio and recording.deleted
    assert _document(archive_env, result)["twilio_deleted_at"] is not None


def test_a_redelivery_after_the_twilio_delete_finds_the_archive_on_twilios_404(archive_env, sim) -> None:
    archive_env.options = ArchiveOptions(delete_after_archive=True)
    recording = sim.create_recording(duration=2)
    start = format_datetime(recording.start_time)
    archive_env.archive(recording, RecordingStartTime=start)
    assert recording.deleted  # from now on Twilio answers 404 for it
    requests_before = len(sim.state.requests)
    # The same message again: the worker died after the delete, before acknowledging it.
    result = archive_env.archive(recording, RecordingStartTime=start)
    assert result.outcome == "already-archived"
    # Only the resource and media requests that answered 404; no second delete, no dead letter.
    later = list(sim.state.requests)[requests_before:]
    assert sorted((r.method, r.status) for r in later) == [("GET", 404), ("GET", 404)]


def test_two_deliveries_of_one_event_at_once_archive_it_once(archive_env, sim) -> None:
    # The slow body holds both deliveries past their "already archived?" look, so both upload.
    recording = sim.create_recording(duration=20, faults=Faults(slow_seconds=1.0))
    with ThreadPoolExecutor(2) as pool:
        results = list(pool.map(lambda _: archive_env.archive(recording), range(2)))
    assert sorted(result.outcome for result in results) == ["already-archived", "archived"]
    archived = [e for e in read_chain(archive_env.store, "", recording.sid)[0] if e.action == "archived"]
    assert len(archived) == 1
    assert len(list(archive_env.store.list_keys("media/"))) == 1


def test_a_duplicate_whose_multipart_upload_the_other_aborted_retries_and_finds_the_archive(
        archive_env, sim) -> None:
    # Over one 5 MiB part: each delivery starts a multipart upload and clears the other's.
    recording = sim.create_recording(duration=700, faults=Faults(slow_seconds=1.0))

    def deliver(_: int) -> str:
        try:
            return archive_env.archive(recording).outcome
        except (TwilioUnavailable, StorageUnavailable):  # transient: the task retries it
            return "retry"

    with ThreadPoolExecutor(2) as pool:
        outcomes = list(pool.map(deliver, range(2)))
    assert "archived" in outcomes and set(outcomes) <= {"archived", "already-archived", "retry"}
    assert archive_env.archive(recording).outcome == "already-archived"
    assert archive_env.store.incomplete_uploads() == []


def test_credentials_go_only_over_https_or_to_the_configured_api_base(archive_env, sim) -> None:
    recording = sim.create_recording()
    url = archive_env.event(recording).recording_url  # the configured base: plain HTTP allowed
    assert archive_env.twilio.fetch_recording(url, recording.account_sid)["sid"] == recording.sid
    before = len(sim.state.requests)
    host, port = sim.base_url.split("//", 1)[1].split(":")
    for other in (url.replace(f":{port}", f":{int(port) + 1}"), url.replace(f"http://{host}:{port}", f"http://{host}")):
        with pytest.raises(ForeignHost, match="not HTTPS"):
            archive_env.twilio.fetch_recording(other, recording.account_sid)
    assert len(sim.state.requests) == before
