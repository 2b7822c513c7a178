"""Keys, documents and the media check."""

from __future__ import annotations

import json
from datetime import UTC, datetime

from recvault import documents as docs
from recvault import layout
from recvault.wav import wav_header
from recvault.workers.delivery import backoff
from recvault.workers.media_facts import HeaderProbe, check_media

RE = "RE" + "1" * 32
AC = "AC" + "2" * 32


def test_keys_are_deterministic_and_partitioned_by_recording_date() -> None:
    date = docs.recording_date("Wed, 20 Apr 2022 23:45:25 -0300", datetime(2030, 1, 1, tzinfo=UTC))
    assert date == "2022-04-21"  # the UTC date
    assert layout.media_key("p/", date, AC, RE, "wav") == f"p/media/date=2022-04-21/{AC}/{RE}.wav"
    assert layout.metadata_key("", date, RE) == f"metadata/date=2022-04-21/{RE}.json"
    assert docs.recording_date(None, datetime(2030, 1, 2, tzinfo=UTC)) == "2030-01-02"


def test_metadata_document_has_every_recording_field_on_one_line() -> None:
    document = docs.metadata_document({"sid": RE, "price": None, "unexpected": "x"}, {"media_key": "k"})
    assert set(docs.RECORDING_FIELDS) <= set(document)
    assert document["sid"] == RE and document["price"] is None and "unexpected" not in document
    line = layout.json_line(document)
    assert line.endswith(b"\n") and line.count(b"\n") == 1
    assert json.loads(line)["pipeline_version"].startswith("recvault/")


def test_user_metadata_stays_small_and_ascii() -> None:
    meta = docs.s3_user_metadata({"sid": RE, "account_sid": AC, "source": "Dial\u00e9Verb", "duration": "42"})
    assert meta["recording-sid"] == RE and meta["source"] == "Dial?Verb"
    assert sum(len(k) + len(v) for k, v in meta.items()) < 2048


def test_media_check_compares_header_with_twilio() -> None:
    header = wav_header(2, 8000 * 2 * 2 * 42)
    assert check_media(header, fmt="wav", encrypted=False, channels=2, duration=42)["media_check"] == "ok"
    mismatch = check_media(header, fmt="wav", encrypted=False, channels=1, duration=60)["media_check"]
    assert "channels 2 != 1" in mismatch and "duration" in mismatch
    assert check_media(header, fmt="mp3", encrypted=False, channels=2, duration=42) == {"media_check": "not-applicable"}
    garbage = check_media(b"garbage", fmt="wav", encrypted=False, channels=1, duration=1)
    assert garbage["media_check"].startswith("unreadable")


def test_header_probe_passes_bytes_through_unchanged() -> None:
    chunks = [b"RIFF", b"x" * 10, b"y" * 100]
    probe = HeaderProbe(chunks)
    assert b"".join(probe) == b"".join(chunks)
    assert probe.header == (b"RIFF" + b"x" * 10 + b"y" * 100)[:64]


def test_backoff_grows_is_capped_and_honours_retry_after() -> None:
    assert 1.0 <= backoff(0, cap=600) <= 2.0
    assert 256 <= backoff(8, cap=600) <= 512
    assert backoff(20, cap=600) <= 600
    assert backoff(0, cap=600, retry_after=30) == 30
