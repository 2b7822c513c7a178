"""The RIFF/WAVE PCM header: built by the simulator, read back by the archive's media facts check."""

from __future__ import annotations

import struct
from dataclasses import dataclass

# Twilio's WAV media: 8 kHz, 16-bit linear PCM (128 kbit/s per channel).
SAMPLE_RATE = 8000
BITS_PER_SAMPLE = 16
HEADER_SIZE = 44  # RIFF (12) + fmt chunk (24) + data chunk header (8)
# What a reader keeps of a media stream to read its header: the header, with room for a longer fmt chunk.
HEADER_PROBE_BYTES = 64


class WavFormatError(ValueError):
    """The bytes are not a PCM WAV header recvault can read."""


@dataclass(frozen=True)
class WavInfo:
    """What a WAV header says about the audio after it."""

    channels: int
    sample_rate: int
    bits: int
    data_size: int

    @property
    def duration_seconds(self) -> float:
        return self.data_size / (self.sample_rate * self.channels * self.bits // 8)


def wav_header(channels: int, data_size: int, sample_rate: int = SAMPLE_RATE, bits: int = BITS_PER_SAMPLE) -> bytes:
    """A canonical 44-byte PCM header for `data_size` bytes of samples."""
    block_align = channels * bits // 8
    return (
        b"RIFF" + struct.pack("<I", 36 + data_size) + b"WAVE"
        + b"fmt " + struct.pack("<IHHIIHH", 16, 1, channels, sample_rate, sample_rate * block_align, block_align, bits)
        + b"data" + struct.pack("<I", data_size)
    )


def parse_wav_header(data: bytes) -> WavInfo:
    """Read channels, rate, sample size and data length from the first bytes of a WAV file."""
    if len(data) < 12 or data[:4] != b"RIFF" or data[8:12] != b"WAVE":
        raise WavFormatError("no RIFF/WAVE signature")
    offset, fmt = 12, None
    while offset + 8 <= len(data):
        chunk_id, size = data[offset:offset + 4], struct.unpack_from("<I", data, offset + 4)[0]
        body = offset + 8
        if chunk_id == b"fmt ":
            if body + 16 > len(data):
                raise WavFormatError("fmt chunk truncated")
            audio_format, channels, rate, _, _, bits = struct.unpack_from("<HHIIHH", data, body)
            if audio_format != 1 or channels < 1 or rate < 1 or bits not in (8, 16, 24, 32):
                raise WavFormatError(f"not linear PCM (format {audio_format}, {channels} ch, {bits} bit)")
            fmt = (channels, rate, bits)
        elif chunk_id == b"data":
            if fmt is None:
                raise WavFormatError("data chunk before fmt chunk")
            return WavInfo(fmt[0], fmt[1], fmt[2], size)
        offset = body + size + (size & 1)
    raise WavFormatError("header truncated before the data chunk")
