"""The archive's media check: the WAV header against what Twilio reported (channels, duration)."""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from recvault.wav import HEADER_PROBE_BYTES, WavFormatError, parse_wav_header

# Twilio rounds RecordingDuration to whole seconds.
DURATION_TOLERANCE_SECONDS = 1.0


class HeaderProbe:
    """Passes chunks through unchanged, keeping the first bytes for the header check."""

    def __init__(self, chunks: Iterable[bytes]) -> None:
        self._chunks = chunks
        self.header = b""

    def __iter__(self) -> Iterator[bytes]:
        for chunk in self._chunks:
            if len(self.header) < HEADER_PROBE_BYTES:
                self.header += chunk[: HEADER_PROBE_BYTES - len(self.header)]
            yield chunk


def check_media(header: bytes, *, fmt: str, encrypted: bool, channels: int, duration: int) -> dict:
    """Facts read from the stored header and whether they agree with Twilio's resource."""
    if fmt != "wav" or encrypted:
        # MP3 frames and encrypted audio carry no header recvault can read.
        return {"media_check": "not-applicable"}
    try:
        info = parse_wav_header(header)
    except WavFormatError as error:
        return {"media_check": f"unreadable: {error}"}
    problems = []
    if info.channels != channels:
        problems.append(f"channels {info.channels} != {channels}")
    if abs(info.duration_seconds - duration) > DURATION_TOLERANCE_SECONDS:
        problems.append(f"duration {info.duration_seconds:.3f}s != {duration}s")
    return {
        "media_channels": info.channels,
        "media_sample_rate": info.sample_rate,
        "media_duration_seconds": round(info.duration_seconds, 3),
        "media_check": "ok" if not problems else "mismatch: " + "; ".join(problems),
    }
