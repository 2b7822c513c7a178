"""Callbacks in Twilio's own shapes are read as the general parsers read them."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime

import pytest

from recvault.events import InvalidCallback, RecordingStatusEvent

ACCOUNT = "AC" + "0" * 32
RECORDING = "RE" + "1" * 32
URL = f"https://api.twilio.com/2010-04-01/Accounts/{ACCOUNT}/Recordings/{RECORDING}"


def _event(**params: str) -> RecordingStatusEvent:
    base = {"AccountSid": ACCOUNT, "RecordingSid": RECORDING, "RecordingStatus": "completed", "RecordingUrl": URL}
    return RecordingStatusEvent.from_params({**base, **params})


@pytest.mark.parametrize("offset_days", [0, 1, 59, 365 * 3 + 40, 365 * 30 + 200])
def test_twilios_start_time_is_the_datetime_email_utils_gives(offset_days: int) -> None:
    moment = datetime(2024, 2, 28, 23, 59, 59, tzinfo=UTC) + timedelta(days=offset_days, seconds=offset_days * 7)
    for text in (moment.strftime("%a, %d %b %Y %H:%M:%S +0000"), moment.strftime("%d %b %Y %H:%M:%S +0000")):
        parsed = _event(RecordingStartTime=text).recording_start_time
        assert parsed == parsedate_to_datetime(text)
        assert parsed is not None and parsed.utcoffset() == timedelta(0)


@pytest.mark.parametrize("text", ["Tue, 24 Nov 2026 10:00:00 +0530", "24 Nov 26 10:00:00 GMT",
                                  "Tue, 24 Nov 2026 10:00 -0800"])
def test_other_start_time_spellings_still_parse(text: str) -> None:
    assert _event(RecordingStartTime=text).recording_start_time == parsedate_to_datetime(text)


@pytest.mark.parametrize("text", ["Tue, 31 Feb 2026 10:00:00 +0000", "Tue, 24 Nov 2026 24:00:00 +0000", "tomorrow"])
def test_impossible_start_times_are_refused(text: str) -> None:
    with pytest.raises(InvalidCallback, match="not an RFC 2822 date"):
        _event(RecordingStartTime=text)


def test_the_media_host_of_a_plain_url_is_its_lower_case_host() -> None:
    upper = URL.replace("api.twilio.com", "API.Twilio.com:443")
    assert _event(RecordingUrl=upper).media_host == "api.twilio.com"
    assert _event().media_host == "api.twilio.com"


def test_a_plain_url_naming_another_recording_is_refused() -> None:
    other = URL.replace(RECORDING, "RE" + "2" * 32)
    with pytest.raises(InvalidCallback, match="does not name this AccountSid and RecordingSid"):
        _event(RecordingUrl=other)


@pytest.mark.parametrize("url", [URL.replace("https://", "https://user@"), URL + "?x=1", URL + "#f"])
def test_urls_outside_twilios_shape_take_the_general_checks(url: str) -> None:
    with pytest.raises(InvalidCallback, match="must not carry a query, fragment or credentials"):
        _event(RecordingUrl=url)
