"""The Recording Status Callback, parsed and validated, with every received parameter kept."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any, Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from recvault import labels as label_rules
from recvault import sids

# The SID kind each callback parameter carries.
SID_PREFIXES = {
    "AccountSid": sids.ACCOUNT,
    "CallSid": sids.CALL,
    "ConferenceSid": sids.CONFERENCE,
    "RecordingSid": sids.RECORDING,
}
# Statuses Twilio documents for recording callbacks (the Participants API adds the last four).
STATUSES = (
    "in-progress",
    "completed",
    "absent",
    "failed",
    "started",
    "paused",
    "resumed",
    "stopped",
)
RecordingStatus = Literal[
    "in-progress", "completed", "absent", "failed", "started", "paused", "resumed", "stopped"
]
RECORDING_PATH = re.compile(
    rf"^/2010-04-01/Accounts/(?P<account>{sids.sid_pattern(sids.ACCOUNT)})"
    rf"/Recordings/(?P<recording>{sids.sid_pattern(sids.RECORDING)})$"
)
# The RecordingUrl exactly as Twilio writes it. One fullmatch settles such a URL where urlsplit
# and the checks after it would take five times as long on every callback; any other URL takes
# that general path, so this only ever accepts what the general path accepts.
TWILIO_RECORDING_URL = re.compile(
    rf"https?://(?P<host>[A-Za-z0-9.-]+)(?::[0-9]{{1,5}})?/2010-04-01/Accounts/(?P<account>{sids.sid_pattern(sids.ACCOUNT)})"
    rf"/Recordings/(?P<recording>{sids.sid_pattern(sids.RECORDING)})"
)
# RecordingStartTime as Twilio writes it ("Wed, 20 Apr 2022 23:45:25 +0000"): read by one
# fullmatch, where email.utils takes four times as long on every callback; it gives the same
# datetime for these, and anything else (other zones, two-digit years) takes email.utils' path.
MONTHS = {name: number for number, name in enumerate(
    ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"), start=1)}
TWILIO_START_TIME = re.compile(
    rf"(?:(?:Mon|Tue|Wed|Thu|Fri|Sat|Sun), )?([0-9]{{1,2}}) ({'|'.join(MONTHS)}) ([1-9][0-9]{{3}}) "
    r"([0-9]{2}):([0-9]{2}):([0-9]{2}) \+0000"
)
# Twilio's known sources; unknown values are accepted but must stay printable and short.
KNOWN_SOURCES = frozenset(
    {
        "DialVerb",
        "Conference",
        "OutboundAPI",
        "Trunking",
        "RecordVerb",
        "StartCallRecordingAPI",
        "StartConferenceRecordingAPI",
        "StartCallRecordingTwiML",
    }
)
SAFE_TOKEN = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")

Params = dict[str, str | list[str]]


class InvalidCallback(ValueError):
    """The callback is signed but its parameters are malformed or incomplete."""


def first(params: Params, name: str) -> str | None:
    """The first value of a parameter that may have been repeated."""
    value = params.get(name)
    if isinstance(value, list):
        return value[0] if value else None
    return value


class RecordingStatusEvent(BaseModel):
    """One Recording Status Callback from Twilio."""

    model_config = ConfigDict(frozen=True, populate_by_name=True, extra="forbid")

    account_sid: str = Field(alias="AccountSid")
    recording_sid: str = Field(alias="RecordingSid")
    recording_status: RecordingStatus = Field(alias="RecordingStatus")
    recording_url: str | None = Field(default=None, alias="RecordingUrl")
    call_sid: str | None = Field(default=None, alias="CallSid")
    conference_sid: str | None = Field(default=None, alias="ConferenceSid")
    recording_duration: int | None = Field(default=None, alias="RecordingDuration", ge=0)
    recording_channels: int | None = Field(default=None, alias="RecordingChannels", ge=1, le=2)
    recording_start_time: datetime | None = Field(default=None, alias="RecordingStartTime")
    recording_source: str | None = Field(default=None, alias="RecordingSource")
    recording_track: Literal["inbound", "outbound", "both"] | None = Field(
        default=None, alias="RecordingTrack"
    )
    error_code: int | None = Field(default=None, alias="ErrorCode")
    encryption_details: dict[str, Any] | None = Field(default=None, alias="EncryptionDetails")
    params: Params = Field(default_factory=dict)
    # From the signed callback URL's query string (recvault.labels); not part of the dedup key.
    labels: dict[str, str] = Field(default_factory=dict)

    @classmethod
    def from_params(cls, params: Params, labels: dict[str, str] | None = None) -> RecordingStatusEvent:
        """Parse raw callback parameters; raise InvalidCallback with a readable reason."""
        fields: dict[str, object] = {}
        for alias in _ALIASES:  # one lookup each: this runs for every callback
            value = params.get(alias)
            if isinstance(value, list):
                value = value[0] if value else None
            if value:
                fields[alias] = value
        fields["params"] = params
        fields["labels"] = labels or {}
        try:
            return cls.model_validate(fields)
        except ValidationError as error:
            reasons = []
            for problem in error.errors():
                where = ".".join(str(p) for p in problem["loc"]) or "callback"
                reasons.append(f"{where}: {problem['msg'].removeprefix('Value error, ')}")
            raise InvalidCallback("; ".join(reasons)) from None

    @field_validator("account_sid", "recording_sid", "call_sid", "conference_sid")
    @classmethod
    def _sid_format(cls, value: str | None, info: Any) -> str | None:
        alias = _SID_ALIASES[info.field_name]
        if value is not None and not sids.is_sid(value, SID_PREFIXES[alias]):
            raise ValueError(f"not a valid {alias}")
        return value

    @field_validator("labels")
    @classmethod
    def _label_shape(cls, value: dict[str, str]) -> dict[str, str]:
        try:
            return label_rules.validate(value)
        except label_rules.InvalidLabels as error:
            raise ValueError(str(error)) from None

    @field_validator("recording_start_time", mode="before")
    @classmethod
    def _rfc2822(cls, value: object) -> object:
        if isinstance(value, str):
            try:
                plain = TWILIO_START_TIME.fullmatch(value)
                if plain is not None:
                    day, month, year, hour, minute, second = plain.groups()
                    return datetime(int(year), MONTHS[month], int(day), int(hour), int(minute), int(second),
                                    tzinfo=UTC)
                return parsedate_to_datetime(value)
            except (TypeError, ValueError, OverflowError):  # OverflowError: a year past any datetime
                raise ValueError("not an RFC 2822 date") from None
        return value

    @field_validator("recording_source")
    @classmethod
    def _source_shape(cls, value: str | None) -> str | None:
        if value is not None and value not in KNOWN_SOURCES and not SAFE_TOKEN.fullmatch(value):
            raise ValueError("not a recording source name")
        return value

    @field_validator("encryption_details", mode="before")
    @classmethod
    def _json_object(cls, value: object) -> object:
        if isinstance(value, str):
            try:
                value = json.loads(value)
            except (ValueError, RecursionError):  # RecursionError: nesting deeper than Python's stack
                raise ValueError("not valid JSON") from None
            if not isinstance(value, dict):
                raise ValueError("must be a JSON object")
        return value

    @model_validator(mode="after")
    def _url_matches_sids(self) -> RecordingStatusEvent:
        if self.recording_url is None:
            if self.recording_status == "completed":
                raise ValueError("RecordingUrl is required when RecordingStatus is completed")
            return self
        plain = TWILIO_RECORDING_URL.fullmatch(self.recording_url)
        if plain is not None:
            if plain["account"] != self.account_sid or plain["recording"] != self.recording_sid:
                raise ValueError("RecordingUrl does not name this AccountSid and RecordingSid")
            return self
        parts = urlsplit(self.recording_url)
        match = RECORDING_PATH.match(parts.path)
        if parts.scheme not in {"https", "http"} or not parts.hostname or not match:
            raise ValueError(
                "RecordingUrl must be <scheme>://<host>/2010-04-01/Accounts/AC…/Recordings/RE…"
            )
        if parts.query or parts.fragment or parts.username or parts.password:
            raise ValueError("RecordingUrl must not carry a query, fragment or credentials")
        if match["account"] != self.account_sid or match["recording"] != self.recording_sid:
            raise ValueError("RecordingUrl does not name this AccountSid and RecordingSid")
        return self

    @property
    def dedup_key(self) -> str:
        """Twilio may resend a callback; one (RecordingSid, RecordingStatus) is one event."""
        return f"{self.recording_sid}:{self.recording_status}"

    @property
    def media_host(self) -> str | None:
        if self.recording_url is None:
            return None
        plain = TWILIO_RECORDING_URL.fullmatch(self.recording_url)
        return plain["host"].lower() if plain is not None else urlsplit(self.recording_url).hostname


_ALIASES = tuple(
    f.alias for name, f in RecordingStatusEvent.model_fields.items() if f.alias and name not in ("params", "labels")
)
# The callback parameter each SID field comes from, looked up per callback without pydantic's
# model_fields (a deprecation-checking descriptor on the class).
_SID_ALIASES = {
    name: f.alias for name, f in RecordingStatusEvent.model_fields.items() if f.alias in SID_PREFIXES
}
