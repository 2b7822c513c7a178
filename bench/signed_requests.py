"""Pre-sign unique Recording Status Callbacks for load generators (one per line: signature TAB body)."""

from __future__ import annotations

import secrets
from pathlib import Path
from urllib.parse import urlencode

from twilio.request_validator import RequestValidator


def write_signed_requests(path: Path, *, url: str, token: str, account_sid: str, count: int,
                          api_host: str = "api.twilio.com", append: bool = False) -> Path:
    """Write (or append) `count` distinct completed-recording callbacks signed for `url`."""
    validator = RequestValidator(token)
    with path.open("a" if append else "w") as out:
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


class SignedCallbacks:
    """A file of signed callbacks for one URL that grows on demand, so runs never repeat a line."""

    def __init__(self, path: Path, *, url: str, token: str, account_sid: str) -> None:
        self.path, self.url, self._token, self._account = path, url, token, account_sid
        self.lines = 0
        path.write_text("")

    def ensure(self, lines: int) -> Path:
        """Make the file hold at least `lines` callbacks."""
        if lines > self.lines:
            write_signed_requests(self.path, url=self.url, token=self._token, account_sid=self._account,
                                  count=lines - self.lines, append=True)
            self.lines = lines
        return self.path
