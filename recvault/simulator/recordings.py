"""The simulator's state: accounts, API keys, recordings with their faults, and a request log."""

from __future__ import annotations

import base64
import secrets
import threading
import time
from collections import deque
from dataclasses import dataclass, field, fields
from datetime import UTC, datetime, timedelta
from decimal import ROUND_CEILING, Decimal
from typing import Any, overload

# Twilio's ErrorCode values in recording callbacks: 0 success, 16101 too short, 16102 silent,
# 16105 no public key configured for Voice Recording Encryption.
NO_ERROR, TOO_SHORT, SILENT, NO_PUBLIC_KEY = "0", "16101", "16102", "16105"
# The final statuses a simulated recording can end in.
OUTCOMES = ("completed", "absent", "failed")

# Twilio charges $0.0025 per recorded minute, started minutes rounded up; prices are negative.
PRICE_PER_MINUTE = Decimal("-0.0025")
REQUEST_LOG_LIMIT = 100_000


def new_sid(prefix: str) -> str:
    """A Twilio-shaped SID: two letters then 32 hex digits."""
    return prefix + secrets.token_hex(16)


def _now() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)


@dataclass
class Faults:
    """Misbehaviour to inject; counters are 'first N requests' and count down as they fire."""

    not_found_seconds: float = 0.0  # resource and media answer 404 this long after creation
    rate_limited: int = 0  # first N media requests answer 429 (error 20429)
    retry_after_seconds: int = 1  # Retry-After sent with those 429s
    server_errors: int = 0  # first N media requests answer 503 (error 20503)
    slow_seconds: float = 0.0  # pause between the media headers and the body
    cut_after_bytes: int | None = None  # with cut_times: close the connection after this many bytes
    cut_times: int = 0
    wrong_length_times: int = 0  # first N responses announce more bytes than they send
    gone: bool = False  # 404 forever, as if deleted at Twilio
    dual_unavailable: bool = False  # RequestedChannels=2 answers 400 (error 16113, no dual version)
    invalid_request: bool = False  # media requests answer 400 (error 20001), whatever is asked
    media_seconds: int | None = None  # serve audio this long, whatever the resource's duration says
    bytes_per_second: float | None = None  # stream media no faster than this (one stream's bandwidth)
    first_byte_seconds: float = 0.0  # every resource, media and delete request waits this long to answer
    redirect_to: str | None = None  # media requests answer 302 with this Location, sent as given

    @classmethod
    def from_dict(cls, data: dict) -> Faults:
        known = {f.name for f in fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"unknown fault(s): {', '.join(sorted(unknown))}")
        return cls(**data)


@dataclass
class SimRecording:
    """One recording as Twilio holds it, plus the simulator's fault plan for it."""

    account_sid: str
    sid: str = field(default_factory=lambda: new_sid("RE"))
    call_sid: str | None = field(default_factory=lambda: new_sid("CA"))
    conference_sid: str | None = None
    channels: int = 1
    duration: int = 30
    source: str = "StartCallRecordingAPI"
    track: str = "both"
    status: str = "completed"
    date_created: datetime = field(default_factory=_now)
    start_time: datetime | None = None  # default: `duration` seconds before date_created
    date_updated: datetime | None = None
    price_delay: float = 0.0  # seconds after creation before Twilio fills in the price
    price_unit: str = "USD"
    encrypted: bool = False
    encryption_details: dict | None = None
    error_code: int | None = None
    deleted: bool = False
    faults: Faults = field(default_factory=Faults)
    created_monotonic: float = field(default_factory=time.monotonic, repr=False)
    media_requests: int = 0

    def __post_init__(self) -> None:
        if self.channels not in (1, 2):
            raise ValueError("channels must be 1 or 2")
        if self.duration < 0:
            raise ValueError("duration must not be negative")
        if self.start_time is None:
            self.start_time = self.date_created - timedelta(seconds=self.duration)
        if self.encrypted and self.encryption_details is None:
            self.encryption_details = {
                "type": "rsa-ecb-oaep",
                "public_key_sid": new_sid("CR"),
                "encrypted_cek": base64.b64encode(secrets.token_bytes(256)).decode(),
                "iv": base64.b64encode(secrets.token_bytes(12)).decode(),
            }

    @property
    def age(self) -> float:
        return time.monotonic() - self.created_monotonic

    @property
    def price(self) -> str | None:
        """Null until `price_delay` has passed, then $0.0025 per started minute."""
        if self.status != "completed" or self.age < self.price_delay:
            return None
        minutes = (Decimal(self.duration) / 60).to_integral_value(ROUND_CEILING)
        return str(PRICE_PER_MINUTE * max(minutes, Decimal(1)))

    @property
    def hidden(self) -> bool:
        """Answer 404 for it: deleted, gone, or still inside its not-found window."""
        return self.deleted or self.faults.gone or self.age < self.faults.not_found_seconds

    @property
    def has_media(self) -> bool:
        return self.status == "completed"

    @property
    def media_duration(self) -> int:
        """Seconds of audio the media files hold (the resource's duration unless a fault says otherwise)."""
        return self.duration if self.faults.media_seconds is None else self.faults.media_seconds

    @overload
    def served_channels(self, requested: None) -> int: ...
    @overload
    def served_channels(self, requested: int | None) -> int | None: ...

    def served_channels(self, requested: int | None) -> int | None:
        """Channels of the file served for RequestedChannels, or None when that is a 400."""
        dual = self.channels == 2 and not self.faults.dual_unavailable
        if requested is None:
            return 2 if dual else 1
        if requested == 1 or (requested == 2 and dual):
            return requested
        return None


@dataclass(frozen=True)
class LoggedRequest:
    """One Twilio API request as the simulator saw it (never the credentials themselves)."""

    method: str
    path: str
    query: str
    auth: str  # "none", "invalid" or "valid"
    principal: str | None  # the AccountSid or API key SID that authenticated
    status: int
    at: float

    def as_dict(self) -> dict:
        return {f.name: getattr(self, f.name) for f in fields(self)}


class SimState:
    """Everything the simulated Twilio knows; safe to use from the test thread and the server."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._tokens: dict[str, str] = {}
        self._parents: dict[str, str] = {}
        self._api_keys: dict[str, tuple[str, str]] = {}
        self.recordings: dict[str, SimRecording] = {}
        self.requests: deque[LoggedRequest] = deque(maxlen=REQUEST_LOG_LIMIT)
        # Each list page after the first repeats this many recordings of the page before, as
        # Twilio's do when recordings are created while a client pages through a list.
        self.list_page_overlap = 0

    def __repr__(self) -> str:
        return f"SimState(accounts={len(self._tokens)}, recordings={len(self.recordings)})"

    # --- accounts -------------------------------------------------------------
    def add_account(self, sid: str | None = None, token: str | None = None, *,
                    parent: str | None = None) -> tuple[str, str]:
        """Register an account (a subaccount when `parent` is given); returns (sid, token)."""
        sid, token = sid or new_sid("AC"), token or secrets.token_hex(16)
        with self._lock:
            self._tokens[sid] = token
            if parent:
                self._parents[sid] = parent
        return sid, token

    def add_api_key(self, account_sid: str, sid: str | None = None,
                    secret: str | None = None) -> tuple[str, str]:
        """Register an API key for an account; returns (key sid, secret)."""
        if account_sid not in self._tokens:
            raise KeyError(f"unknown account {account_sid}")
        sid, secret = sid or new_sid("SK"), secret or secrets.token_urlsafe(24)
        with self._lock:
            self._api_keys[sid] = (secret, account_sid)
        return sid, secret

    @property
    def accounts(self) -> list[str]:
        return list(self._tokens)

    @property
    def default_account(self) -> str | None:
        return next(iter(self._tokens), None)

    def token_for(self, account_sid: str) -> str:
        return self._tokens[account_sid]

    def authenticate(self, username: str, password: str) -> str | None:
        """The AccountSid these Basic credentials act for, or None when they are wrong."""
        if username.startswith("SK"):
            secret, account = self._api_keys.get(username, (None, None))
            ok = secret is not None and secrets.compare_digest(secret.encode(), password.encode())
            return account if ok else None
        token = self._tokens.get(username)
        ok = token is not None and secrets.compare_digest(token.encode(), password.encode())
        return username if ok else None

    def may_access(self, principal: str, account_sid: str) -> bool:
        """An account reaches its own resources and its subaccounts'."""
        return principal == account_sid or self._parents.get(account_sid) == principal

    # --- recordings -----------------------------------------------------------
    def add(self, recording: SimRecording) -> SimRecording:
        if recording.account_sid not in self._tokens:
            raise KeyError(f"unknown account {recording.account_sid}")
        with self._lock:
            self.recordings[recording.sid] = recording
        return recording

    def create_recording(self, **values: Any) -> SimRecording:
        """Build and register a recording; `faults` may be a Faults or a dict."""
        values.setdefault("account_sid", self.default_account)
        if isinstance(values.get("faults"), dict):
            values["faults"] = Faults.from_dict(values["faults"])
        if values.get("conference_sid") and "call_sid" not in values:
            values["call_sid"] = None
        return self.add(SimRecording(**values))

    def get(self, sid: str) -> SimRecording | None:
        return self.recordings.get(sid)

    def log(self, entry: LoggedRequest) -> None:
        self.requests.append(entry)

    def reset(self) -> None:
        """Forget recordings and the request log; accounts and keys stay."""
        with self._lock:
            self.recordings.clear()
            self.requests.clear()
            self.list_page_overlap = 0
