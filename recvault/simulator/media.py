"""Deterministic recording media, generated on the fly in constant memory.

The payload repeats one ~1 MiB pseudo-random block derived from the RecordingSid, each
repetition rotated by a different offset (a slice, so it costs nothing) so the stream
is not periodic at the block size. Any size streams in ~2 MiB of memory.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import dataclass
from functools import lru_cache

from recvault.wav import BITS_PER_SAMPLE, SAMPLE_RATE, WavInfo, parse_wav_header, wav_header

__all__ = [
    "FORMATS", "WavInfo", "iter_media", "media_sha256", "media_size", "parse_wav_header",
    "wav_data_size",
]

FORMATS = ("wav", "mp3")
CONTENT_TYPES = {"wav": "audio/x-wav", "mp3": "audio/mpeg"}
CHUNK_SIZE = 256 * 1024
# Twilio's MP3 media is 32 kbit/s, i.e. 4000 bytes per second of audio.
MP3_BYTES_PER_SECOND = 4000
# MPEG-2.5 Layer III at 8 kHz and 32 kbit/s: 576 samples per frame, 72 * 32000 / 8000 bytes.
MP3_FRAME_SIZE = 288
# Frame header: sync, MPEG-2.5, Layer III, no CRC, 32 kbit/s, 8 kHz, no padding, then the
# mode byte: 0xC4 = mono + original, 0x04 = stereo + original.
MP3_FRAME_HEADER = {1: bytes((0xFF, 0xE3, 0x48, 0xC4)), 2: bytes((0xFF, 0xE3, 0x48, 0x04))}
WAV_BLOCK_SIZE = 1 << 20
MP3_BLOCK_SIZE = MP3_FRAME_SIZE * 3641  # whole frames, just over 1 MiB


def wav_data_size(channels: int, duration: int) -> int:
    """Bytes of PCM samples: duration x 8000 samples/s x 2 bytes x channels."""
    return duration * SAMPLE_RATE * (BITS_PER_SAMPLE // 8) * channels


@dataclass(frozen=True)
class _Layout:
    """A media file as a fixed prefix followed by `body_size` bytes cut from a rotated block."""

    prefix: bytes
    body_size: int
    doubled: bytes  # the block twice, so every rotation is one contiguous slice
    block_size: int
    unit: int  # rotations stay multiples of this (a WAV sample frame, an MP3 frame)
    stride: int

    @property
    def size(self) -> int:
        return len(self.prefix) + self.body_size


def _check(fmt: str, channels: int, duration: int) -> None:
    if fmt not in FORMATS:
        raise ValueError(f"format must be one of {FORMATS}, not {fmt!r}")
    if channels not in (1, 2):
        raise ValueError(f"channels must be 1 or 2, not {channels!r}")
    if duration < 0:
        raise ValueError("duration must not be negative")


def _seed(sid: str, fmt: str, channels: int) -> bytes:
    return hashlib.sha256(f"{sid}:{fmt}:{channels}".encode()).digest()


@lru_cache(maxsize=16)
def _block(sid: str, fmt: str, channels: int) -> tuple[bytes, int]:
    """The doubled pseudo-random block and its rotation stride (cached: ~2 MiB each)."""
    seed = _seed(sid, fmt, channels)
    if fmt == "wav":
        block = hashlib.shake_256(seed).digest(WAV_BLOCK_SIZE)
        units = WAV_BLOCK_SIZE // (2 * channels)
    else:
        frames = bytearray(hashlib.shake_256(seed).digest(MP3_BLOCK_SIZE))
        for i, byte in enumerate(MP3_FRAME_HEADER[channels]):
            frames[i::MP3_FRAME_SIZE] = bytes((byte,)) * (MP3_BLOCK_SIZE // MP3_FRAME_SIZE)
        block = bytes(frames)
        units = MP3_BLOCK_SIZE // MP3_FRAME_SIZE
    stride = int.from_bytes(seed[:8], "big") % units | 1
    return block + block, stride


def _id3_tag(sid: str) -> bytes:
    """An ID3v2.3 tag whose title frame holds the RecordingSid."""
    text = b"\x00" + sid.encode()  # encoding byte 0 = ISO-8859-1
    frame = b"TIT2" + len(text).to_bytes(4, "big") + b"\x00\x00" + text
    size = len(frame)
    syncsafe = bytes(((size >> 21) & 0x7F, (size >> 14) & 0x7F, (size >> 7) & 0x7F, size & 0x7F))
    return b"ID3\x03\x00\x00" + syncsafe + frame


def _layout(sid: str, fmt: str, channels: int, duration: int) -> _Layout:
    _check(fmt, channels, duration)
    doubled, stride = _block(sid, fmt, channels)
    if fmt == "wav":
        body = wav_data_size(channels, duration)
        return _Layout(wav_header(channels, body), body, doubled, WAV_BLOCK_SIZE, 2 * channels, stride)
    body = duration * MP3_BYTES_PER_SECOND
    return _Layout(_id3_tag(sid), body, doubled, MP3_BLOCK_SIZE, MP3_FRAME_SIZE, stride)


def media_size(sid: str, fmt: str, channels: int, duration: int) -> int:
    """Total bytes of the media file (header included)."""
    _check(fmt, channels, duration)
    if fmt == "wav":
        return len(wav_header(channels, 0)) + wav_data_size(channels, duration)
    return len(_id3_tag(sid)) + duration * MP3_BYTES_PER_SECOND


def _segments(layout: _Layout) -> Iterator[memoryview]:
    """The body as views into the doubled block: one rotation per block-sized segment."""
    view = memoryview(layout.doubled)
    units = layout.block_size // layout.unit
    remaining, index = layout.body_size, 0
    while remaining > 0:
        start = (index * layout.stride) % units * layout.unit
        segment = view[start:start + min(layout.block_size, remaining)]
        yield segment
        remaining -= len(segment)
        index += 1


def iter_media(
    sid: str, fmt: str, channels: int, duration: int, chunk_size: int = CHUNK_SIZE
) -> Iterator[bytes]:
    """The media file as chunks of at most `chunk_size` bytes, always the same for one sid."""
    if chunk_size < 1:
        raise ValueError("chunk_size must be positive")
    layout = _layout(sid, fmt, channels, duration)
    yield layout.prefix
    for segment in _segments(layout):
        for offset in range(0, len(segment), chunk_size):
            yield bytes(segment[offset:offset + chunk_size])


def media_sha256(sid: str, fmt: str, channels: int, duration: int) -> str:
    """Hex SHA-256 of the whole media file, computed by streaming it."""
    layout = _layout(sid, fmt, channels, duration)
    digest = hashlib.sha256(layout.prefix)
    for segment in _segments(layout):
        digest.update(segment)
    return digest.hexdigest()
