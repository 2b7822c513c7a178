"""A recording leaves Twilio only when its archived copy is proven to be Twilio's own media."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from recvault import documents as docs
from recvault import layout
from recvault.errors import IntegrityFailed, PermanentError
from recvault.simulator.media import iter_media
from recvault.simulator.recordings import Faults
from recvault.twilio.deletion import delete_blockers
from recvault.workers.archive import ArchiveOptions
from recvault.workers.price_refresh import InvalidRefresh, RefreshTarget, refresh_recording


def media_key_of(env, recording) -> str:
    resource = env.twilio.fetch_recording(env.event(recording).recording_url, recording.account_sid)
    date = docs.recording_date(resource["start_time"], datetime.now(UTC))
    return layout.media_key("", date, recording.account_sid, recording.sid, "wav")


def test_an_object_at_the_key_that_is_not_twilios_media_is_never_adopted(archive_env, sim) -> None:
    archive_env.options = ArchiveOptions(delete_after_archive=True)
    recording = sim.create_recording(duration=3)
    # Something else wrote the key first: same size, other bytes.
    planted = bytes(len(b"".join(iter_media(recording.sid, "wav", 1, 3))))
    archive_env.store.put_bytes(media_key_of(archive_env, recording), planted, content_type="audio/x-wav")
    with pytest.raises(IntegrityFailed, match="not adopted"):
        archive_env.archive(recording)
    assert not recording.deleted
    assert list(archive_env.store.list_keys("metadata/")) == []


def test_media_a_killed_worker_stored_is_adopted_once_it_matches_twilio(archive_env, sim) -> None:
    archive_env.options = ArchiveOptions(delete_after_archive=True)
    recording = sim.create_recording(duration=3)
    genuine = b"".join(iter_media(recording.sid, "wav", 1, 3))
    archive_env.store.put_bytes(media_key_of(archive_env, recording), genuine, content_type="audio/x-wav",
                                metadata={"requested-channels": "1"})
    result = archive_env.archive(recording)
    document = json.loads(archive_env.store.get_bytes(result.key))
    assert document["media_source"] == "verified-against-twilio" and document["media_check"] == "ok"
    assert result.deleted_from_twilio and recording.deleted


def test_audio_that_disagrees_with_twilios_duration_blocks_the_delete(archive_env, sim) -> None:
    archive_env.options = ArchiveOptions(delete_after_archive=True)
    recording = sim.create_recording(duration=30, faults=Faults(media_seconds=3))
    with pytest.raises(IntegrityFailed, match="media check says mismatch"):
        archive_env.archive(recording)
    assert not recording.deleted
    [key] = archive_env.store.list_keys("metadata/")  # archived, with the reason on record
    assert json.loads(archive_env.store.get_bytes(key))["twilio_deleted_at"] is None


def test_a_dual_original_kept_as_mono_is_not_deleted(archive_env, sim) -> None:
    archive_env.options = ArchiveOptions(delete_after_archive=True)
    recording = sim.create_recording(channels=2, duration=3, faults=Faults(dual_unavailable=True))
    with pytest.raises(IntegrityFailed, match="dual-channel original was archived as mono"):
        archive_env.archive(recording)
    assert not recording.deleted


def test_only_twilios_no_dual_version_answer_falls_back_to_mono(archive_env, sim) -> None:
    recording = sim.create_recording(channels=2, duration=3, faults=Faults(invalid_request=True))
    with pytest.raises(PermanentError, match="400"):
        archive_env.archive(recording)
    asked = [r.query for r in sim.state.requests if r.path.endswith(f"{recording.sid}.wav")]
    assert asked and all("RequestedChannels=1" not in q for q in asked)


def test_a_refresh_derives_every_url_and_key_from_one_recording(archive_env, sim) -> None:
    archive_env.options = ArchiveOptions(delete_after_archive=True)
    archived = sim.create_recording(duration=2, price_delay=60)
    never_archived = sim.create_recording(duration=2)
    result = archive_env.archive(archived)
    assert result.price_pending
    # A forged message: the other recording's URL beside this document's key.
    forged = {"account_sid": never_archived.account_sid, "recording_sid": never_archived.sid,
              "recording_url": archive_env.event(never_archived).recording_url, "metadata_key": result.key}
    target = RefreshTarget.from_payload(forged)
    assert target.recording_sid == never_archived.sid
    with pytest.raises(InvalidRefresh):
        refresh_recording(target, twilio=archive_env.twilio, store=archive_env.store, prefix="",
                          delete_after_archive=True, now=lambda: datetime.now(UTC), final=True)
    assert not never_archived.deleted and not archived.deleted


@pytest.mark.parametrize("payload", [
    {"account_sid": "AC123", "recording_sid": "RE" + "a" * 32, "date": "2026-01-01"},
    {"account_sid": "AC" + "a" * 32, "recording_sid": "RE" + "a" * 32 + "\n", "date": "2026-01-01"},
    {"account_sid": "AC" + "a" * 32, "recording_sid": "RE" + "a" * 32, "date": "../../x"},
    {"account_sid": "AC" + "a" * 32, "recording_sid": "RE" + "a" * 32},
])
def test_malformed_refresh_messages_are_refused(payload) -> None:
    with pytest.raises(InvalidRefresh):
        RefreshTarget.from_payload(payload)


def test_delete_blockers_name_each_reason() -> None:
    document = {"sid": "RE1", "account_sid": "AC1", "duration": "10", "media_check": "ok",
                "requested_channels": 2, "media_source": "uploaded"}
    twilio = {"sid": "RE1", "account_sid": "AC1", "duration": "10", "status": "completed", "channels": 2}
    assert delete_blockers(document, twilio) == []
    assert delete_blockers(document, {**twilio, "duration": "11"}) == ["duration at Twilio 11 != archived 10"]
    assert delete_blockers(document, {**twilio, "sid": "RE2"}) == [
        "Twilio's Recording resource names another recording"]
    assert delete_blockers({**document, "media_check": "unreadable: short"}, twilio) == [
        "media check says unreadable: short"]
    assert delete_blockers({**document, "media_source": None}, twilio) == [
        "the archived media was not verified against the bytes Twilio served"]
