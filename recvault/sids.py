"""Twilio SIDs: two letters naming the resource, then 32 hex digits. Written here once."""

from __future__ import annotations

import re

ACCOUNT = "AC"
API_KEY = "SK"
CALL = "CA"
CONFERENCE = "CF"
RECORDING = "RE"


def sid_pattern(prefix: str) -> str:
    """A regular expression (unanchored) for one kind of SID, for building larger patterns."""
    return f"{prefix}[0-9a-fA-F]{{32}}"


_COMPILED = {p: re.compile(sid_pattern(p)) for p in (ACCOUNT, API_KEY, CALL, CONFERENCE, RECORDING)}


def is_sid(value: object, prefix: str) -> bool:
    """Whether `value` is exactly one SID of that kind (fullmatch: no trailing newline)."""
    return isinstance(value, str) and _COMPILED[prefix].fullmatch(value) is not None


def check_sid(value: str, prefix: str, name: str) -> str:
    """`value` unchanged when it is a SID of that kind; ValueError naming `name` otherwise."""
    if not is_sid(value, prefix):
        raise ValueError(f"{name} must be '{prefix}' followed by 32 hex digits")
    return value
