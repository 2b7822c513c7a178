"""Pre-sign unique Recording Status Callbacks for load generators (one per line: signature TAB body)."""

from __future__ import annotations

import secrets
from pathlib import Path
from urllib.parse import urlencode

from twilio.request_validator import RequestValidator


def write_signed_requests(path: Path, *, url: str, token: str, account_sid: str, count: int,
                          api_host: str = "api.twilio.com") -> Path:
    """Write `count` distinct completed-recording callbacks signed for `url`."""
    validator = RequestValidator(token)
    with path.open("w") as out:
        for _ in range(count):
            recording = "RE" + secrets.token_hex(16)
            params = {
                "AccountSid": account_sid, "CallSid": "CA" + secrets.token_hex(16),
                "RecordingSid": recording,
                "RecordingUrl": f"https://{api_host}/2010-04-01/Accounts/{account_sid}/Recordings/{recording}",
                "RecordingStatus": "completed", "RecordingDuration": "60", "RecordingChannels": "2",
                "RecordingStartTime": "Tue, 24 Nov 2026 10:00:00 +0000",
                "RecordingSource": "StartCallRecordingAPI", "RecordingTrack": "both", "ErrorCode": "0",
            }
            out.write(f"{validator.compute_signature(url, params)}\t{urlencode(params)}\n")
    return path
