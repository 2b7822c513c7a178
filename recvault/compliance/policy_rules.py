"""The policy file's rules as pydantic models: what a rule matches and what it decides.

Every problem is reported as `policy rule 'NAME': FIELD: reason`, so an operator can find
the line to fix; unknown fields are refused, with the closest field's name, since a misspelt
condition would otherwise match everything.
"""

from __future__ import annotations

import difflib
import json
import re
from typing import Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from recvault import labels as label_rules
from recvault import sids
from recvault.errors import ConfigurationError
from recvault.events import STATUSES
from recvault.storage.placement import kms_key_problem, storage_class_problem
from recvault.storage.tags import MAX_TAGS, validate_tags

# Tags recvault itself sets on every media object (the rest of the 10 are the policy's).
SYSTEM_TAGS = ("recvault-policy", "recvault-retain-until")
POLICY_TAGS = MAX_TAGS - len(SYSTEM_TAGS)
# A rule's Object Lock mode: COMPLIANCE, GOVERNANCE, or "none" for no lock (written in any case).
Mode = Literal["COMPLIANCE", "GOVERNANCE", "none"]
NO_LOCK = "none"
MODES_TEXT = '"COMPLIANCE", "GOVERNANCE" or "none"'
Track = Literal["inbound", "outbound", "both"]
# Rule names end up in the `recvault-policy` tag and in log lines: short, tag-safe, no spaces.
RULE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}")


class PolicyError(ConfigurationError):
    """The policy file is malformed; the message names the rule and the field."""


class Decides(BaseModel):
    """What a rule decides; a field left out falls back to the default's."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)

    mode: Mode | None = None
    retention_days: int | None = Field(default=None, ge=0)
    legal_hold: bool | None = None
    tags: dict[str, str] = Field(default_factory=dict)
    storage_class: str | None = None
    kms_key_id: str | None = None
    # A permission: Twilio's copy is deleted only if RECVAULT_DELETE_AFTER_ARCHIVE is on too.
    delete_from_twilio: bool | None = None

    @field_validator("mode", mode="before")
    @classmethod
    def _mode(cls, value: object) -> object:
        """COMPLIANCE, GOVERNANCE or "none", in any case; every message spells them as the docs do."""
        if value is None:
            return None
        written = value.strip().upper() if isinstance(value, str) else None
        if written in ("COMPLIANCE", "GOVERNANCE"):
            return written
        if written == NO_LOCK.upper():
            return NO_LOCK
        raise ValueError(f"must be {MODES_TEXT}, not {json.dumps(value)}")

    @field_validator("tags")
    @classmethod
    def _tags(cls, value: dict[str, str]) -> dict[str, str]:
        if len(value) > POLICY_TAGS:
            raise ValueError(f"at most {POLICY_TAGS} tags ({len(SYSTEM_TAGS)} of S3's {MAX_TAGS} are recvault's)")
        if set(value) & set(SYSTEM_TAGS):
            raise ValueError(f"{', '.join(SYSTEM_TAGS)} are set by recvault")
        try:
            return validate_tags(value)
        except ConfigurationError as error:  # pydantic reports ValueErrors only
            raise ValueError(str(error)) from None

    @field_validator("storage_class")
    @classmethod
    def _storage_class(cls, value: str | None) -> str | None:
        problem = storage_class_problem(value) if value is not None else None
        if problem:
            raise ValueError(problem)
        return value

    @field_validator("kms_key_id")
    @classmethod
    def _kms_key(cls, value: str | None) -> str | None:
        problem = kms_key_problem(value) if value is not None else None
        if problem:
            raise ValueError(problem)
        return value

    @property
    def name(self) -> str:
        return "default"


class Rule(Decides):
    """One `[[rule]]`: conditions that must all hold, and what it decides."""

    rule_name: str = Field(alias="name")
    account_sid: str | list[str] | None = None
    source: str | list[str] | None = None
    channels: Literal[1, 2] | list[Literal[1, 2]] | None = None
    track: Track | list[Track] | None = None
    min_duration: int | None = Field(default=None, ge=0)
    max_duration: int | None = Field(default=None, ge=0)
    conference: bool | None = None
    status: str | list[str] | None = None
    error_code: int | list[int] | None = None
    encrypted: bool | None = None
    labels: dict[str, str | list[str]] = Field(default_factory=dict)

    @property
    def name(self) -> str:
        return self.rule_name

    @field_validator("rule_name")
    @classmethod
    def _name(cls, value: str) -> str:
        if not RULE_NAME.fullmatch(value) or value == "default":
            raise ValueError("must be 1-64 letters, digits, '_', '.', ':' or '-' (and not 'default')")
        return value

    @field_validator("account_sid")
    @classmethod
    def _account(cls, value: str | list[str] | None) -> str | list[str] | None:
        for sid in _many(value):
            if not sids.is_sid(sid, sids.ACCOUNT):
                raise ValueError(f"{sid!r} is not an AccountSid (AC + 32 hex digits)")
        return value

    @field_validator("status")
    @classmethod
    def _status(cls, value: str | list[str] | None) -> str | list[str] | None:
        for status in _many(value):
            if status not in STATUSES:
                raise ValueError(f"{status!r} is not a recording status ({', '.join(STATUSES)})")
        return value

    @field_validator("labels")
    @classmethod
    def _labels(cls, value: dict[str, str | list[str]]) -> dict[str, str | list[str]]:
        for name, wanted in value.items():
            for one in _many(wanted):
                try:
                    label_rules.check_value(label_rules.check_name(name), one)
                except label_rules.InvalidLabels as error:
                    raise ValueError(str(error)) from None
        return value

    @model_validator(mode="after")
    def _duration_range(self) -> Rule:
        if self.min_duration is not None and self.max_duration is not None and self.min_duration > self.max_duration:
            raise ValueError("min_duration is larger than max_duration")
        return self

    def matches(self, facts: dict[str, Any], labels: dict[str, str]) -> bool:
        """Whether every condition of this rule holds for these facts and labels."""
        for key in ("account_sid", "source", "channels", "track", "conference", "status", "error_code", "encrypted"):
            wanted = getattr(self, key)
            if wanted is not None and facts[key] not in _many(wanted):
                return False
        if self.min_duration is not None and facts["duration"] < self.min_duration:
            return False
        if self.max_duration is not None and facts["duration"] > self.max_duration:
            return False
        return all(labels.get(name) in _many(wanted) for name, wanted in self.labels.items())


M = TypeVar("M", bound=Decides)


def _many(value: Any) -> list[Any]:
    return [] if value is None else value if isinstance(value, list) else [value]


def parse_default(raw: object) -> Decides:
    return _parse(Decides, raw, "default")


def parse_rule(raw: object, position: int) -> Rule:
    name = raw.get("name") if isinstance(raw, dict) else None
    return _parse(Rule, raw, name if isinstance(name, str) and name else f"#{position}")


def _parse(model: type[M], raw: object, name: str) -> M:
    where = f"policy rule {name!r}"
    if not isinstance(raw, dict):
        raise PolicyError(f"{where}: must be a table")
    try:
        return model.model_validate(raw)
    except ValidationError as error:
        lines: dict[str, str] = {}  # one line per field: a union reports each of its members
        for problem in error.errors():
            field = str(problem["loc"][0]) if problem["loc"] else ""
            lines.setdefault(field, f"{where}: {_describe(model, field, problem)}")
        raise PolicyError("\n".join(lines.values())) from None


def field_names(model: type[Decides]) -> list[str]:
    """The fields a [default] (Decides) or a [[rule]] (Rule) may have, as written in the file."""
    return [info.alias or name for name, info in model.model_fields.items()]


def _unknown(model: type[Decides], field: str) -> str:
    """Why `field` is refused, with the field meant when one is close."""
    if model is Decides and field in field_names(Rule):
        return f"{field}: unknown field in [default], which applies to everything no rule matches; " \
               "conditions go in [[rule]] tables"
    closest = difflib.get_close_matches(field, field_names(model), n=1)
    if closest:
        return f"{field}: unknown field; did you mean {closest[0]}?"
    if model is Rule and label_rules.NAME.fullmatch(field):
        return f'{field}: unknown field; a condition on a callback label is written labels = {{ {field} = "…" }}'
    return f"{field}: unknown field; known fields: {', '.join(field_names(model))}"


def _describe(model: type[Decides], field: str, problem: Any) -> str:
    if not field:  # a check across fields names them itself
        return str(problem["msg"]).removeprefix("Value error, ")
    if problem["type"] == "extra_forbidden":
        return _unknown(model, field)
    if problem["type"] == "missing":
        return f"{field}: required"
    message = str(problem["msg"]).removeprefix("Value error, ")
    return f"{field}: {message}"
