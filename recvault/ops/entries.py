"""One line per archived document: the facts listings, filters and the status page use."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

# Twilio's RecordingStatus of a recording whose metadata document exists.
COMPLETED = "completed"


@dataclass(frozen=True)
class Entry:
    """A metadata document (status `completed`) or an event document (any other status), summarised."""

    sid: str
    date: str
    key: str
    status: str
    account_sid: str | None = None
    call_sid: str | None = None
    conference_sid: str | None = None
    source: str | None = None
    channels: int | None = None
    duration: int | None = None
    price: float | None = None
    price_unit: str | None = None
    error_code: int | None = None
    received_at: datetime | None = None
    # When recvault finished with it: archived (metadata) or recorded (event).
    done_at: datetime | None = None
    rule: str | None = None
    # The S3 tags the policy set, and the labels the callback URL carried.
    tags: dict[str, str] = field(default_factory=dict)
    labels: dict[str, str] = field(default_factory=dict)
    media_size: int | None = None

    @classmethod
    def from_document(cls, key: str, date: str, document: dict[str, Any], *, event: bool) -> Entry:
        return cls(
            sid=str(document.get("sid")),
            date=date,
            key=key,
            status=str(document.get("status") or ("unknown" if event else COMPLETED)),
            account_sid=_text(document.get("account_sid")),
            call_sid=_text(document.get("call_sid")),
            conference_sid=_text(document.get("conference_sid")),
            source=_text(document.get("source")),
            channels=_int(document.get("channels")),
            duration=_int(document.get("duration")),
            price=_float(document.get("price")),
            price_unit=_text(document.get("price_unit")),
            error_code=_int(document.get("error_code")),
            received_at=_time(document.get("received_at")),
            done_at=_time(document.get("recorded_at" if event else "archived_at")),
            rule=_text(document.get("policy")),
            tags=_mapping(document.get("tags")),
            labels=_mapping(document.get("labels")),
            media_size=_int(document.get("media_size")),
        )

    @property
    def latency_seconds(self) -> float | None:
        """Callback received → archived, for archived recordings."""
        if self.status != COMPLETED or self.received_at is None or self.done_at is None:
            return None
        return max(0.0, (self.done_at - self.received_at).total_seconds())

    def to_json(self) -> dict[str, Any]:
        return {
            "sid": self.sid, "date": self.date, "status": self.status, "account_sid": self.account_sid,
            "call_sid": self.call_sid, "conference_sid": self.conference_sid, "source": self.source,
            "channels": self.channels, "duration": self.duration,
            "price": None if self.price is None else f"{self.price:.4f}", "price_unit": self.price_unit,
            "error_code": self.error_code,
            "received_at": self.received_at.isoformat() if self.received_at else None,
            "done_at": self.done_at.isoformat() if self.done_at else None,
            "latency_seconds": self.latency_seconds, "rule": self.rule, "tags": self.tags,
            "labels": self.labels,
            "media_size": self.media_size,
        }


def _text(value: object) -> str | None:
    return value if isinstance(value, str) and value else None


def _int(value: object) -> int | None:
    try:
        return int(value) if value is not None and value != "" else None  # type: ignore[call-overload]
    except (TypeError, ValueError):
        return None


def _float(value: object) -> float | None:
    try:
        return float(value) if value is not None and value != "" else None  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None


def _time(value: object) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _mapping(value: Any) -> dict[str, str]:
    return {str(k): str(v) for k, v in value.items()} if isinstance(value, dict) else {}
