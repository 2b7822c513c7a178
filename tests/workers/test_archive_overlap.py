"""Fewer round trips per recording: the Recording resource is fetched while the media starts."""

from __future__ import annotations

import json
import time

import pytest

from recvault.errors import TwilioUnavailable
from recvault.simulator.recordings import Faults
from recvault.twilio.api import TwilioApi

LATENCY = 0.6


def test_the_resource_and_the_media_wait_on_twilio_together_not_one_after_the_other(archive_env, sim) -> None:
    recording = sim.create_recording(duration=2, faults=Faults(first_byte_seconds=LATENCY))
    started = time.monotonic()
    assert archive_env.archive(recording).outcome == "archived"
    # One after the other would take two latencies before the first media byte.
    assert time.monotonic() - started < 2 * LATENCY - 0.1
    asked = [r.path.rsplit(".", 1)[-1] for r in sim.state.requests if recording.sid in r.path]
    assert sorted(asked) == ["json", "wav"]


def test_a_callback_without_its_channel_count_waits_for_the_resource_and_still_archives(archive_env, sim) -> None:
    recording = sim.create_recording(duration=2, channels=2)
    result = archive_env.archive(recording, RecordingChannels="")
    assert result.outcome == "archived" and result.media is not None
    wavs = [r for r in sim.state.requests if recording.sid in r.path and r.path.endswith(".wav")]
    assert len(wavs) == 1 and "RequestedChannels=2" in wavs[0].query


def test_a_callback_whose_facts_differ_from_the_resource_is_archived_as_the_resource_says(archive_env, sim) -> None:
    # The callback says mono; Twilio's resource says dual: the dual version is what is kept.
    recording = sim.create_recording(duration=2, channels=2)
    result = archive_env.archive(recording, RecordingChannels="1")
    document = json.loads(archive_env.store.get_bytes(result.key))
    assert document["requested_channels"] == 2 and document["media_check"] == "ok"
    wavs = [r for r in sim.state.requests if recording.sid in r.path and r.path.endswith(".wav")]
    assert [("RequestedChannels=2" in r.query) for r in wavs] == [False, True]  # the guess, then the resource's


def test_a_media_download_that_trickles_past_its_deadline_is_stopped_to_be_retried(sim, sim_account) -> None:
    recording = sim.create_recording(duration=60, faults=Faults(bytes_per_second=200_000))
    host = sim.base_url.split("//", 1)[1].split(":", 1)[0]
    twilio = TwilioApi(base_url=sim.base_url, allowed_hosts=frozenset({host}),
                       credentials=lambda account: (sim_account.sid, sim_account.token), download_deadline=0.3)
    with twilio.open_media(sim.recording_url(recording), recording.account_sid, fmt="wav", channels=1) as media:
        with pytest.raises(TwilioUnavailable, match="still running after"):
            for _ in media.chunks:
                pass
    twilio.close()
