"""A realistic mix of simulated recordings: sources, channels, sizes, encryption, outcomes."""

from __future__ import annotations

import random

from recvault.events import KNOWN_SOURCES
from recvault.simulator.recordings import SimRecording, SimState, new_sid

CONFERENCE_SOURCES = frozenset({"Conference", "StartConferenceRecordingAPI"})
# WAV at 8 kHz, 16 bit: 16,000 bytes per second and channel. Past ~328 s of mono audio a
# recording exceeds one 5 MiB part, so these durations make multipart uploads.
LARGE_MONO_SECONDS = (340, 880)
SMALL_SECONDS = (2, 90)


def recordings(state: SimState, rng: random.Random, count: int, *, large_share: float = 0.0,
               absent_share: float = 0.05, encrypted_share: float = 0.05) -> list[SimRecording]:
    """Create `count` recordings in the simulator, seeded by `rng`."""
    created = []
    sources = sorted(KNOWN_SOURCES)
    for _ in range(count):
        source = rng.choice(sources)
        channels = rng.choice((1, 1, 2))
        if rng.random() < large_share:
            low, high = LARGE_MONO_SECONDS
            duration = rng.randint(low, high) // channels
        else:
            duration = rng.randint(*SMALL_SECONDS)
        absent = rng.random() < absent_share
        conference = source in CONFERENCE_SOURCES
        created.append(state.create_recording(
            channels=channels, duration=0 if absent else duration, source=source,
            status="absent" if absent else "completed", error_code=16102 if absent else None,
            call_sid=None if conference else new_sid("CA"),
            conference_sid=new_sid("CF") if conference else None,
            encrypted=not absent and rng.random() < encrypted_share,
        ))
    return created


def total_bytes(recs: list[SimRecording]) -> int:
    """Bytes of WAV media the recordings amount to."""
    return sum(16_000 * rec.channels * rec.duration for rec in recs if rec.status == "completed")
