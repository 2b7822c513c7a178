"""Which recordings a legal hold covers: a selector over RecordingSid, CallSid, AccountSid, labels and days. Pure."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from recvault import sids
from recvault.days import parse_day


class BadSelector(ValueError):
    """A selector that names nothing, or names it wrongly; the message says which part."""


@dataclass(frozen=True)
class Selector:
    """Recordings to act on; every part given must match (an empty part matches all)."""

    recording_sids: tuple[str, ...] = ()
    call_sid: str | None = None
    account_sid: str | None = None
    labels: dict[str, str] = field(default_factory=dict)
    date_from: str | None = None
    date_to: str | None = None

    def __post_init__(self) -> None:
        for sid in self.recording_sids:
            _check(sid, sids.RECORDING, "RecordingSid")
        if self.call_sid:
            _check(self.call_sid, sids.CALL, "--call")
        if self.account_sid:
            _check(self.account_sid, sids.ACCOUNT, "--account")
        for value, what in ((self.date_from, "--from"), (self.date_to, "--to")):
            if value:
                _check_day(value, what)
        if self.date_from and self.date_to and self.date_to < self.date_from:
            raise BadSelector(f"--to {self.date_to} is before --from {self.date_from}")
        if not self.as_dict():
            raise BadSelector("name the recordings: RecordingSid(s), --call, --account, --label or --from/--to")

    def as_dict(self) -> dict[str, Any]:
        """The parts given, for the hold registry and the audit trail."""
        parts: dict[str, Any] = {"recording_sids": list(self.recording_sids), "call_sid": self.call_sid,
                                 "account_sid": self.account_sid, "labels": dict(self.labels),
                                 "date_from": self.date_from, "date_to": self.date_to}
        return {name: value for name, value in parts.items() if value}

    @classmethod
    def from_dict(cls, parts: dict[str, Any]) -> Selector:
        return cls(tuple(parts.get("recording_sids") or ()), parts.get("call_sid"), parts.get("account_sid"),
                   dict(parts.get("labels") or {}), parts.get("date_from"), parts.get("date_to"))

    def describe(self) -> str:
        """One line a person reads: `RE… CA… label tenant=acme 2026-11-01..2026-11-30`."""
        words = [*self.recording_sids, self.call_sid or "", self.account_sid or ""]
        words += [f"label {k}={v}" for k, v in sorted(self.labels.items())]
        if self.date_from or self.date_to:
            words.append(f"{self.date_from or '…'}..{self.date_to or '…'}")
        return " ".join(w for w in words if w)

    def matches(self, sid: str, date: str, document: dict[str, Any] | None) -> bool:
        """Whether the recording `sid` of day `date`, with this metadata document, is selected."""
        document = document or {}
        found = document.get("labels")
        labels: dict[str, Any] = found if isinstance(found, dict) else {}
        return ((not self.recording_sids or sid in self.recording_sids)
                and (not self.call_sid or document.get("call_sid") == self.call_sid)
                and (not self.account_sid or document.get("account_sid") == self.account_sid)
                and all(str(labels.get(k)) == v for k, v in self.labels.items())
                and (not self.date_from or date >= self.date_from)
                and (not self.date_to or date <= self.date_to))


def parse_label(text: str) -> tuple[str, str]:
    """`k=v` → (k, v); BadSelector naming the text otherwise."""
    name, sep, value = text.partition("=")
    if not sep or not name:
        raise BadSelector(f"--label {text!r} is not written name=value")
    return name, value


def _check_day(value: str, what: str) -> None:
    try:
        parse_day(value)
    except ValueError as error:
        raise BadSelector(f"{what} {error}") from None


def _check(value: str, kind: str, what: str) -> None:
    if not sids.is_sid(value, kind):
        raise BadSelector(f"{what} {value!r} is not a {kind}… SID ({kind} and 32 hex digits)")
