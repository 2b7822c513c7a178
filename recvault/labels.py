"""Labels: name=value pairs a deployment puts in its callback URL's query string.

Twilio signs the whole callback URL, so once the signature checks out a label is as
trustworthy as the callback itself. The policy matches on labels and the archive keeps
them beside the recording. The rules for their shape live here, used by ingest (which
refuses a bad label with a 400), the event model and the policy loader.

Label names start with a lowercase letter, Twilio's parameter names with a capital: on a
GET callback, where Twilio's parameters and the labels share one query string, that is
how the two are told apart.
"""

from __future__ import annotations

import re

# At most this many labels per callback: the policy matches on a few, the document keeps them all.
MAX_LABELS = 10
MAX_NAME_CHARS = 64
MAX_VALUE_CHARS = 128
NAME = re.compile(rf"[a-z][a-z0-9_.-]{{0,{MAX_NAME_CHARS - 1}}}")
# The characters S3 accepts in a tag value, so a label can always become a tag.
VALUE = re.compile(rf"[A-Za-z0-9 +\-=.:/_@]{{0,{MAX_VALUE_CHARS}}}")
# The JSON-callback signature parameter Twilio adds to the query string; never a label.
SIGNATURE_PARAMETERS = frozenset({"bodySHA256"})


class InvalidLabels(ValueError):
    """A label is malformed; the message names it and says why."""


def check_name(name: str) -> str:
    """`name` if it is a valid label name; InvalidLabels otherwise."""
    if not NAME.fullmatch(name):
        raise InvalidLabels(f"label name {name[:80]!r} must be 1-{MAX_NAME_CHARS} characters of a-z, 0-9, "
                            "'_', '-', '.', beginning with a lowercase letter")
    return name


def check_value(name: str, value: str) -> str:
    """`value` if it is a valid value for label `name`; InvalidLabels otherwise."""
    if not VALUE.fullmatch(value):
        raise InvalidLabels(f"label {name!r}: value must be at most {MAX_VALUE_CHARS} characters of letters, "
                            "digits, space and + - = . : / _ @")
    return value


def validate(labels: dict[str, str]) -> dict[str, str]:
    """`labels` unchanged if every name and value is valid and there are not too many."""
    if len(labels) > MAX_LABELS:
        raise InvalidLabels(f"{len(labels)} labels given; at most {MAX_LABELS}")
    for name, value in labels.items():
        check_value(check_name(name), value)
    return labels


def from_query(pairs: list[tuple[str, str]], *, shared_with_twilio: bool) -> dict[str, str]:
    """Labels from a callback URL's query (name, value) pairs, validated.

    POST (`shared_with_twilio` false): every query parameter but the JSON body's signature hash
    is a label, and a malformed one raises InvalidLabels. GET: Twilio's parameters share the
    query, and a callback is never refused for a parameter Twilio might add one day, so a
    label is a parameter whose name begins with a lowercase letter, given once, with a valid
    name and value; anything else stays a callback parameter only.
    """
    if shared_with_twilio:
        counts: dict[str, int] = {}
        for name, _ in pairs:
            counts[name] = counts.get(name, 0) + 1
        found = {name: value for name, value in pairs
                 if name[:1].islower() and counts[name] == 1 and name not in SIGNATURE_PARAMETERS
                 and NAME.fullmatch(name) and VALUE.fullmatch(value)}
        return dict(list(found.items())[:MAX_LABELS])
    labels: dict[str, str] = {}
    for name, value in pairs:
        if name in SIGNATURE_PARAMETERS:
            continue
        if name in labels:
            raise InvalidLabels(f"label {name[:80]!r} given more than once")
        labels[check_name(name)] = check_value(name, value)
    return validate(labels)
