"""Retention, tags, storage and Twilio deletion, decided per recording from a TOML policy.

A policy is ordered rules plus a required default; the first rule whose every condition
holds wins, and whatever it leaves out it takes from the default. Without a policy file
the built-in default applies: 365 days of GOVERNANCE retention. Example
(`RECVAULT_POLICY_FILE`; a fuller one is deploy/policy.example.toml)::

    [default]
    retention_days = 90
    mode = "GOVERNANCE"            # COMPLIANCE, GOVERNANCE or "none"
    tags = { classification = "call-recording" }

    [[rule]]
    name = "finance-7y"
    labels = { tenant = "acme-securities" }
    retention_days = 2557
    mode = "COMPLIANCE"
    storage_class = "STANDARD_IA"
    delete_from_twilio = true

Rules match on the Recording's facts (account_sid, source, channels, track, min_duration,
max_duration, conference, status, error_code, encrypted) and on the callback URL's
labels; the field models and their checks are in policy_rules.
"""

from __future__ import annotations

import difflib
import hashlib
import json
import re
import tomllib
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from recvault.compliance.policy_rules import (
    NO_LOCK,
    POLICY_TAGS,
    SYSTEM_TAGS,
    Decides,
    PolicyError,
    Rule,
    parse_default,
    parse_rule,
)
from recvault.storage.base import Retention
from recvault.storage.placement import Placement

if TYPE_CHECKING:
    from recvault.settings import Settings

__all__ = ["SYSTEM_TAGS", "Decision", "Policy", "PolicyError", "Rule"]

# Without a policy file, and for what a file's [default] leaves out.
BUILTIN_DEFAULT: dict[str, Any] = {"retention_days": 365, "mode": "GOVERNANCE"}
# Policy versions are this many hex digits of the file's SHA-256: enough to tell files apart.
VERSION_CHARS = 16
# The setting that names the policy file.
POLICY_SETTING = "RECVAULT_POLICY_FILE"
# Where tomllib says a syntax error is, at the end of its message.
TOML_PLACE = re.compile(r"\s*\(at (?:line (\d+), column (\d+)|end of document)\)$")
# The sections a policy file has: [default] and [[rule]]s.
SECTIONS = {"default": "[default]", "rule": "[[rule]]"}
LockMode = Literal["COMPLIANCE", "GOVERNANCE"]


@dataclass(frozen=True)
class Decision:
    """What the policy says for one recording."""

    rule: str
    retention: Retention
    tags: dict[str, str]
    storage_class: str | None = None
    kms_key_id: str | None = None
    # Whether the policy lets Twilio's copy be deleted once the archive is verified.
    delete_from_twilio: bool = True
    policy_version: str = ""

    @property
    def placement(self) -> Placement:
        return Placement(storage_class=self.storage_class, kms_key_id=self.kms_key_id)

    def document_fields(self, labels: dict[str, str]) -> dict[str, Any]:
        """What a metadata document records of this decision: the rule, the policy's version, placement."""
        return {
            "labels": labels, "policy": self.rule, "policy_version": self.policy_version,
            "storage_class": self.storage_class, "kms_key_id": self.kms_key_id,
            "delete_from_twilio": self.delete_from_twilio,
        }


class Policy:
    """Ordered rules and a default; `decide()` is pure."""

    def __init__(self, default: Decides, rules: list[Rule], version: str) -> None:
        self.default = default
        self.rules = rules
        self.version = version
        names = [rule.name for rule in rules]
        for rule in rules:
            if names.count(rule.name) > 1:
                raise PolicyError(f"policy rule {rule.name!r}: name: used by more than one rule")
            if len({**default.tags, **rule.tags}) > POLICY_TAGS:
                raise PolicyError(f"policy rule {rule.name!r}: tags: with the default's, more than {POLICY_TAGS} tags")

    @classmethod
    def load(cls, path: Path | None, *, setting: str | None = None) -> Policy:
        """The policy in `path`, or the built-in default when no file is configured.

        Every line of a PolicyError starts with the file, and `setting` when the file came from one
        (`from_settings`), so the message points at the file actually read."""
        if path is None:
            return cls.builtin()
        where = f"{path} ({setting})" if setting else str(path)
        try:
            raw = Path(path).read_bytes()
            text = raw.decode("utf-8")
            data = tomllib.loads(text)
        except OSError as error:
            raise PolicyError(f"{where}: cannot be read: {error.strerror or error}") from None
        except UnicodeDecodeError as error:
            raise PolicyError(f"{where}: not UTF-8 text (byte {error.start})") from None
        except tomllib.TOMLDecodeError as error:
            raise PolicyError(toml_problem(where, text, error)) from None
        try:
            return cls.from_dict(data, version=_digest(raw))
        except PolicyError as error:
            raise PolicyError("\n".join(f"{where}: {line}" for line in str(error).splitlines())) from None

    @classmethod
    def from_settings(cls, settings: Settings) -> Policy:
        """The policy RECVAULT_POLICY_FILE names, else the built-in default."""
        return cls.load(settings.policy_file, setting=POLICY_SETTING)

    @classmethod
    def builtin(cls) -> Policy:
        return cls.from_dict({"default": {}})

    @classmethod
    def from_dict(cls, data: dict[str, Any], *, version: str | None = None) -> Policy:
        """A policy from parsed TOML; `version` defaults to a hash of the data itself."""
        unknown = sorted(set(data) - set(SECTIONS))
        if unknown:
            raise PolicyError("\n".join(_unknown_section(name, data[name]) for name in unknown))
        if "default" not in data:
            raise PolicyError("policy rule 'default': a [default] table is required")
        raw_default = data["default"]
        default = parse_default({**BUILTIN_DEFAULT, **raw_default} if isinstance(raw_default, dict) else raw_default)
        raw_rules = data.get("rule", [])
        if not isinstance(raw_rules, list):
            raise PolicyError("policy: rules are written as [[rule]] tables")
        rules = [parse_rule(raw, position) for position, raw in enumerate(raw_rules, start=1)]
        if version is None:
            version = _digest(json.dumps(data, sort_keys=True, default=str).encode())
        return cls(default, rules, version)

    # --- what each rule amounts to, its gaps filled from the default ---------------
    def all_rules(self) -> list[Decides]:
        """The rules in order, then the default."""
        return [*self.rules, self.default]

    def effective_days(self, rule: Decides) -> int | None:
        return rule.retention_days if rule.retention_days is not None else self.default.retention_days

    def longest_retention_days(self) -> int:
        """The longest retention any rule (default included) can decide, in days; at least one."""
        return max([1, *[self.effective_days(rule) or 0 for rule in self.all_rules()]])

    def effective_mode(self, rule: Decides) -> LockMode | None:
        mode = rule.mode if rule.mode is not None else self.default.mode
        return None if mode in (None, NO_LOCK) else mode  # type: ignore[return-value]

    def effective_legal_hold(self, rule: Decides) -> bool:
        return bool(rule.legal_hold if rule.legal_hold is not None else self.default.legal_hold)

    def effective_delete(self, rule: Decides) -> bool:
        allowed = rule.delete_from_twilio if rule.delete_from_twilio is not None else self.default.delete_from_twilio
        return allowed is not False

    def default_retention(self, now: datetime | None = None) -> Retention:
        """The lock the default rule gives, for records that belong to no one recording."""
        return self._decision(self.default, now or datetime.now(UTC)).retention

    def rules_that_lock(self) -> list[str]:
        """Names of the rules (default included) that ask for Object Lock retention or a legal hold."""
        return [rule.name for rule in [self.default, *self.rules]
                if self.effective_legal_hold(rule) or (self.effective_mode(rule) and self.effective_days(rule))]

    def default_lock(self) -> tuple[str, int] | None:
        """The default rule's Object Lock as (mode, days): the bucket's default retention; None if it locks nothing."""
        mode, days = self.effective_mode(self.default), self.default.retention_days
        return (mode, days) if mode and days else None

    def rules_that_lock_nothing(self) -> list[str]:
        """Names of the rules whose recordings get no Object Lock of their own."""
        return [rule.name for rule in self.rules
                if not self.effective_legal_hold(rule) and self.effective_mode(rule) is None]

    # --- deciding ----------------------------------------------------------------
    def match(self, recording: dict[str, Any], labels: dict[str, str] | None = None) -> Decides:
        """The first rule that matches a Recording resource (Twilio's snake_case fields), else the default."""
        facts = {
            "account_sid": recording.get("account_sid"),
            "source": recording.get("source"),
            "channels": int(recording.get("channels") or 1),
            "track": recording.get("track"),
            "duration": int(recording.get("duration") or 0),
            "conference": bool(recording.get("conference_sid")),
            "status": recording.get("status") or "completed",
            "error_code": int(recording.get("error_code") or 0),
            "encrypted": bool(recording.get("encryption_details")),
        }
        return next((rule for rule in self.rules if rule.matches(facts, labels or {})), self.default)

    def decide(self, recording: dict[str, Any], *, labels: dict[str, str] | None = None,
               now: datetime | None = None) -> Decision:
        """Everything the policy decides for one recording and its callback's labels."""
        return self._decision(self.match(recording, labels), now or datetime.now(UTC))

    def _decision(self, rule: Decides, now: datetime) -> Decision:
        days, lock = self.effective_days(rule), self.effective_mode(rule)
        until = now + timedelta(days=days) if days and lock else None
        tags = {**self.default.tags, **rule.tags, "recvault-policy": rule.name}
        if until:
            tags["recvault-retain-until"] = until.strftime("%Y-%m-%d")
        retention = Retention(mode=lock if until else None, until=until, legal_hold=self.effective_legal_hold(rule))
        return Decision(
            rule=rule.name, retention=retention, tags=tags,
            storage_class=rule.storage_class or self.default.storage_class,
            kms_key_id=rule.kms_key_id or self.default.kms_key_id,
            delete_from_twilio=self.effective_delete(rule), policy_version=self.version,
        )


def _digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()[:VERSION_CHARS]


def _unknown_section(name: str, value: object) -> str:
    """One line on a top-level name that is neither [default] nor [[rule]], with the one meant."""
    written = f"[[{name}]]" if isinstance(value, list) else f"[{name}]" if isinstance(value, dict) else name
    closest = difflib.get_close_matches(name, list(SECTIONS), n=1)
    hint = f"; did you mean {SECTIONS[closest[0]]}?" if closest else ""
    return f"policy: unknown section {written}; a policy has [default] and [[rule]] tables{hint}"


def toml_problem(where: str, text: str, error: tomllib.TOMLDecodeError) -> str:
    """A TOML syntax error as people read one: where, why, then the line itself with a caret under the spot."""
    message = str(error)
    place = TOML_PLACE.search(message)
    reason = message[: place.start()] if place else message
    lines = text.splitlines() or [""]
    if place and place[1]:
        number, column = int(place[1]), int(place[2])
    else:  # at the end of the document
        number, column = len(lines), len(lines[-1]) + 1
    line = lines[number - 1] if 0 < number <= len(lines) else ""
    word = re.match(r"[A-Za-z_][A-Za-z0-9_.-]*", line[column - 1:])
    if reason == "Invalid value" and word and word[0] not in ("true", "false", "inf", "nan"):
        reason += f' (text is written in quotes: "{word[0]}")'
    gutter = " " * len(str(number))
    caret = "".join(char if char == "\t" else " " for char in line[: column - 1]) + "^"
    return "\n".join([f"{where}: line {number}, column {column}: not valid TOML: {reason}",
                      f"  {number} | {line}", f"  {gutter} | {caret}"])
