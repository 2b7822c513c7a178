"""Retention and compliance tags, decided per recording from a TOML policy.

A policy is a default plus ordered rules; the first rule whose every condition matches
wins. Example (`RECVAULT_POLICY_FILE`)::

    [default]
    retention_days = 365
    mode = "GOVERNANCE"            # COMPLIANCE, GOVERNANCE or "none"
    tags = { classification = "call-recording" }

    [[rule]]
    name = "conference-7y"
    source = ["Conference", "StartConferenceRecordingAPI"]
    min_duration = 60
    retention_days = 2555
    mode = "COMPLIANCE"
    legal_hold = false
    tags = { retention-class = "7y" }
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Literal

from recvault.errors import ConfigurationError
from recvault.storage.base import Retention
from recvault.storage.tags import MAX_TAGS, validate_tags

# Tags recvault itself sets on every media object (the rest of the 10 are the policy's).
SYSTEM_TAGS = ("recvault-policy", "recvault-retain-until")
MATCH_KEYS = {"account_sid", "source", "channels", "track", "min_duration", "max_duration", "encrypted"}
# A rule's Object Lock mode as written in the policy (upper-cased); NONE means no lock.
Mode = Literal["COMPLIANCE", "GOVERNANCE", "NONE"]
MODES: dict[str, Mode] = {"COMPLIANCE": "COMPLIANCE", "GOVERNANCE": "GOVERNANCE", "NONE": "NONE"}


class PolicyError(ConfigurationError):
    """The policy file is malformed; the message names the rule and the field."""


@dataclass(frozen=True)
class Decision:
    """What the policy says for one recording."""

    rule: str
    retention: Retention
    tags: dict[str, str]


@dataclass(frozen=True)
class Rule:
    name: str
    retention_days: int | None
    mode: Mode | None
    legal_hold: bool
    tags: dict[str, str]
    conditions: dict[str, Any] = field(default_factory=dict)

    def matches(self, facts: dict[str, Any]) -> bool:
        for key, wanted in self.conditions.items():
            if key == "min_duration":
                if facts["duration"] < wanted:
                    return False
            elif key == "max_duration":
                if facts["duration"] > wanted:
                    return False
            elif isinstance(wanted, list):
                if facts[key] not in wanted:
                    return False
            elif facts[key] != wanted:
                return False
        return True


class Policy:
    """Ordered rules and a default; `decide()` is pure."""

    def __init__(self, default: Rule, rules: list[Rule]) -> None:
        self.default = default
        self.rules = rules

    @classmethod
    def load(cls, path: Path | None) -> Policy:
        if path is None:
            return cls.from_dict({})
        try:
            data = tomllib.loads(Path(path).read_text())
        except (OSError, tomllib.TOMLDecodeError) as error:
            raise PolicyError(f"RECVAULT_POLICY_FILE {path}: {error}") from None
        return cls.from_dict(data)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Policy:
        default = _rule("default", {"retention_days": 365, "mode": "GOVERNANCE", **data.get("default", {})})
        rules = [_rule(raw.get("name", f"rule-{i + 1}"), raw) for i, raw in enumerate(data.get("rule", []))]
        return cls(default, rules)

    def default_retention(self, now: datetime | None = None) -> Retention:
        """The lock the default rule gives, for records that belong to no one recording."""
        return self.decide({}, now=now).retention

    def rules_that_lock(self) -> list[str]:
        """Names of the rules (default included) that ask for Object Lock retention or a legal hold."""
        return [rule.name for rule in [self.default, *self.rules]
                if rule.legal_hold or (self._mode(rule) not in (None, "NONE") and self._days(rule))]

    def default_lock(self) -> tuple[str, int] | None:
        """The default rule's Object Lock as (mode, days): the bucket's default retention; None if it locks nothing."""
        mode, days = self.default.mode, self.default.retention_days
        return (mode, days) if mode in ("COMPLIANCE", "GOVERNANCE") and days else None

    def rules_that_lock_nothing(self) -> list[str]:
        """Names of the rules whose recordings get no Object Lock of their own."""
        return [rule.name for rule in self.rules if not rule.legal_hold and self._mode(rule) in (None, "NONE")]

    def all_rules(self) -> list[Rule]:
        """The rules in order, then the default."""
        return [*self.rules, self.default]

    def effective_days(self, rule: Rule) -> int | None:
        """Days a rule's recordings are kept (the default's when the rule says nothing)."""
        return self._days(rule)

    def effective_mode(self, rule: Rule) -> Literal["COMPLIANCE", "GOVERNANCE"] | None:
        """The Object Lock mode a rule's recordings get (the default's when the rule says nothing)."""
        mode = self._mode(rule)
        return None if mode is None or mode == "NONE" else mode

    def _mode(self, rule: Rule) -> Mode | None:
        return rule.mode if rule.mode is not None else self.default.mode

    def _days(self, rule: Rule) -> int | None:
        return rule.retention_days if rule.retention_days is not None else self.default.retention_days

    def decide(self, recording: dict[str, Any], *, now: datetime | None = None) -> Decision:
        """Retention and tags for a Recording resource (Twilio's snake_case fields)."""
        facts = {
            "account_sid": recording.get("account_sid"),
            "source": recording.get("source"),
            "channels": int(recording.get("channels") or 1),
            "track": recording.get("track"),
            "duration": int(recording.get("duration") or 0),
            "encrypted": bool(recording.get("encryption_details")),
        }
        rule = next((r for r in self.rules if r.matches(facts)), self.default)
        days = self._days(rule)
        mode = self._mode(rule)
        lock = None if mode is None or mode == "NONE" else mode
        now = now or datetime.now(UTC)
        until = now + timedelta(days=days) if days and lock else None
        tags = {**self.default.tags, **rule.tags, "recvault-policy": rule.name}
        if until:
            tags["recvault-retain-until"] = until.strftime("%Y-%m-%d")
        retention = Retention(mode=lock if until else None, until=until, legal_hold=rule.legal_hold)
        return Decision(rule=rule.name, retention=retention, tags=tags)


def _rule(name: str, raw: dict[str, Any]) -> Rule:
    where = f"policy rule {name!r}"
    unknown = set(raw) - MATCH_KEYS - {"name", "retention_days", "mode", "legal_hold", "tags"}
    if unknown:
        raise PolicyError(f"{where}: unknown field(s) {sorted(unknown)}")
    mode: Mode | None = None
    if raw.get("mode") is not None:
        mode = MODES.get(str(raw["mode"]).upper())
        if mode is None:
            raise PolicyError(f"{where}: mode must be COMPLIANCE, GOVERNANCE or none")
    days = raw.get("retention_days")
    if days is not None and (not isinstance(days, int) or days < 0):
        raise PolicyError(f"{where}: retention_days must be a whole number ≥ 0")
    tags = {str(k): str(v) for k, v in raw.get("tags", {}).items()}
    if len(tags) > MAX_TAGS - len(SYSTEM_TAGS):
        raise PolicyError(f"{where}: at most {MAX_TAGS - len(SYSTEM_TAGS)} tags")
    try:
        validate_tags(tags)
    except ConfigurationError as error:
        raise PolicyError(f"{where}: {error}") from None
    conditions = {k: raw[k] for k in MATCH_KEYS if k in raw}
    return Rule(name, days, mode, bool(raw.get("legal_hold", False)), tags, conditions)
