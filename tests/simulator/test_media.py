"""Generated media: valid headers, exact sizes, deterministic content, streaming hash."""

from __future__ import annotations

import hashlib

import pytest

from recvault.simulator.media import (
    MP3_FRAME_HEADER,
    MP3_FRAME_SIZE,
    iter_media,
    media_sha256,
    media_size,
    parse_wav_header,
)

SID = "RE" + "0123456789abcdef" * 2
OTHER = "RE" + "fedcba9876543210" * 2


def whole(sid: str, fmt: str, channels: int, duration: int, **kw) -> bytes:
    return b"".join(iter_media(sid, fmt, channels, duration, **kw))


@pytest.mark.parametrize("channels", [1, 2])
def test_wav_header_is_valid_pcm_with_exact_sizes(channels: int) -> None:
    data = whole(SID, "wav", channels, 7)
    info = parse_wav_header(data[:64])
    expected_data = 7 * 8000 * 2 * channels
    assert (info.channels, info.sample_rate, info.bits) == (channels, 8000, 16)
    assert info.data_size == expected_data
    assert info.duration_seconds == 7
    assert len(data) == media_size(SID, "wav", channels, 7) == 44 + expected_data
    assert int.from_bytes(data[4:8], "little") == len(data) - 8  # RIFF size


@pytest.mark.parametrize("channels", [1, 2])
def test_mp3_has_id3_tag_then_frames_at_4000_bytes_per_second(channels: int) -> None:
    data = whole(SID, "mp3", channels, 5)
    assert data[:3] == b"ID3"
    tag_size = 10 + int.from_bytes(data[6:10], "big")  # syncsafe bytes stay below 0x80 here
    assert SID.encode() in data[:tag_size]
    frames = data[tag_size:]
    assert len(frames) == 5 * 4000
    assert len(data) == media_size(SID, "mp3", channels, 5)
    header = MP3_FRAME_HEADER[channels]
    assert all(frames[i:i + 4] == header for i in range(0, len(frames) - 4, MP3_FRAME_SIZE))


@pytest.mark.parametrize("channels", [1, 2])
def test_zero_duration_is_just_the_header(channels: int) -> None:
    data = whole(SID, "wav", channels, 0)
    assert len(data) == 44 == media_size(SID, "wav", channels, 0)
    info = parse_wav_header(data)
    assert (info.channels, info.data_size, info.duration_seconds) == (channels, 0, 0)
    assert int.from_bytes(data[4:8], "little") == 36  # RIFF size: the header after its first 8 bytes


def test_content_is_deterministic_per_sid_format_and_channels() -> None:
    first = whole(SID, "wav", 2, 70, chunk_size=65_536)
    assert first == whole(SID, "wav", 2, 70, chunk_size=1_000_003)
    assert first[44:100_000] != whole(OTHER, "wav", 2, 70)[44:100_000]
    assert whole(SID, "wav", 1, 3)[44:] != whole(SID, "wav", 2, 3)[44:48044]


def test_stream_is_not_periodic_at_the_block_size() -> None:
    body = whole(SID, "wav", 1, 200)[44:]  # 3.2 MB: three 1 MiB blocks and a bit
    block = 1 << 20
    assert body[:block] != body[block:2 * block] != body[2 * block:3 * block]
    assert body.count(body[5000:5064]) >= 3  # the same block, rotated


def test_chunks_respect_chunk_size() -> None:
    sizes = [len(c) for c in iter_media(SID, "wav", 2, 100, chunk_size=100_000)]
    assert max(sizes) <= 100_000
    assert sum(sizes) == media_size(SID, "wav", 2, 100)


@pytest.mark.parametrize(("fmt", "channels"), [("wav", 1), ("wav", 2), ("mp3", 1), ("mp3", 2)])
def test_sha256_helper_matches_the_bytes(fmt: str, channels: int) -> None:
    data = whole(SID, fmt, channels, 333)
    assert media_sha256(SID, fmt, channels, 333) == hashlib.sha256(data).hexdigest()


@pytest.mark.parametrize(("fmt", "channels", "duration"), [("flac", 1, 1), ("wav", 3, 1), ("wav", 1, -1)])
def test_rejects_impossible_media(fmt: str, channels: int, duration: int) -> None:
    with pytest.raises(ValueError):
        media_size(SID, fmt, channels, duration)
    with pytest.raises(ValueError):
        next(iter_media(SID, fmt, channels, duration))
