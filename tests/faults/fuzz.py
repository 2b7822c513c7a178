"""Hypothesis strategies for requests to the callback endpoint, each with what it must get back.

Four families, built from real callbacks of real simulated recordings:
    honest     signed with the account's token over exactly what is sent: must be accepted
    malformed  honestly signed, with fields broken, missing, repeated or huge: 2xx or 400/413
    forged     well-formed, with a missing, wrong, stale or mismatched signature: must be 403
    junk       bytes, encodings, lengths, methods, paths and headers (in `tests.faults.junk`)
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
from dataclasses import dataclass
from urllib.parse import urlencode

from hypothesis import strategies as st
from multidict import MultiDict
from twilio.request_validator import RequestValidator

from recvault.simulator.callbacks import callback_params
from recvault.simulator.recordings import SimRecording
from tests.faults.rawhttp import RawRequest
from tests.faults.traffic import Event

PATH = "/twilio/recording-status"
FORM = "application/x-www-form-urlencoded"
STATUSES = ("in-progress", "completed", "absent")
Pairs = list[tuple[str, str]]

# Values that have broken callback parsers: injection, encodings, limits, odd numbers and dates.
NASTY = (
    "", " ", "\x00", "\n", "\r\n", "%00", "%2e%2e%2f", "../../../etc/passwd", "..\\..\\boot.ini",
    "RE" + "0" * 32 + "\n", "RE" + "0" * 32 + "/../../x", "RE" + "０" * 32, "RE" + "g" * 32,
    "re" + "a" * 32, "RE" + "a" * 31, "RE" + "a" * 33, "RE" + "a" * 32 + "\x00", "AC" + "a" * 32 + "\n",
    "CA" + "b" * 32 + " ", "-1", "1e9", "99999999999999999999999", "0x10", "٣", "NaN", "1.5", "3",
    "Wed, 20 Apr 99999999999 23:45:25 +0000", "Wed, 20 Apr 2022 25:61:61 +9999", "now", "0",
    "https://evil.example/2010-04-01/Accounts/AC/Recordings/RE", "javascript:alert(1)",
    "{}", "[]", "null", '{"a":' * 50 + "1" + "}" * 50, "[" * 5000 + "]" * 5000,
    "' OR 1=1 --", "$(reboot)", "{{7*7}}", "${jndi:ldap://x}", "\ud7ff\ue000\U0010ffff", "😀" * 20,
)
KNOWN_FIELDS = ("AccountSid", "CallSid", "ConferenceSid", "RecordingSid", "RecordingUrl", "RecordingStatus",
                "RecordingDuration", "RecordingChannels", "RecordingStartTime", "RecordingSource",
                "RecordingTrack", "ErrorCode", "EncryptionDetails")



@dataclass(frozen=True)
class Probe:
    """One request and the answers it may get."""

    family: str
    request: RawRequest
    signed: bool  # carries a signature made with the token over exactly this request
    expect: frozenset[int] | None  # the only acceptable statuses; None: anything but 5xx
    event: Event | None = None  # the event it names, should it be accepted
    may_hang: bool = False  # cut short on purpose: no answer is fine


@dataclass(frozen=True)
class Target:
    """Where ingest listens, the token it trusts, and real recordings to name."""

    port: int
    token: str
    api_base: str
    recordings: tuple[SimRecording, ...]
    max_body: int

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"


def _sign(token: str, url: str, params: Pairs | None) -> str:
    return RequestValidator(token).compute_signature(url, MultiDict(params or []))


def as_sent(pairs: Pairs, how: str) -> Pairs:
    """The parameters the server receives: a JSON object keeps the last of repeated keys."""
    return list(dict(pairs).items()) if how == "JSON" else pairs


def event_of(pairs: Pairs) -> Event | None:
    sid = next((v for k, v in pairs if k == "RecordingSid"), None)
    status = next((v for k, v in pairs if k == "RecordingStatus"), None)
    return (sid, status) if sid is not None and status is not None else None


def encode(target: Target, pairs: Pairs, how: str, *, token: str | None = None, host: str | None = None,
           headers: tuple[tuple[str, str], ...] = (), sign_url: str | None = None,
           sign_pairs: Pairs | None = None) -> RawRequest:
    """`pairs` as a form POST, a GET query or a JSON body, signed over `sign_url`/`sign_pairs`
    (default: exactly what is sent) with `token` (default: the real one; "" for no signature)."""
    host = target.host if host is None else host
    body, content_type, target_path = b"", None, PATH
    if how == "GET":
        target_path = f"{PATH}?{urlencode(pairs)}"
    elif how == "JSON":
        body = json.dumps(dict(pairs)).encode()
        target_path = f"{PATH}?bodySHA256={hashlib.sha256(body).hexdigest()}"
        content_type = "application/json"
    else:
        body, content_type = urlencode(pairs).encode(), FORM
    url = sign_url or f"http://{host}{target_path}"
    signed_params = None if how in ("GET", "JSON") else (pairs if sign_pairs is None else sign_pairs)
    token = target.token if token is None else token
    signature = _sign(token, url, signed_params) if token else None
    lines = [("Host", host)] if host != "-" else []
    if content_type:
        lines.append(("Content-Type", content_type))
    if signature:
        lines.append(("X-Twilio-Signature", signature))
    method = "GET" if how == "GET" else "POST"
    return RawRequest(method, target_path, (*lines, *headers), body)


@st.composite
def honest_pairs(draw: st.DrawFn, target: Target) -> Pairs:
    """A real callback for a real recording, maybe with parameters Twilio may add one day."""
    rec = draw(st.sampled_from(target.recordings))
    status = draw(st.sampled_from(STATUSES))
    pairs = list(callback_params(rec, status, api_base=target.api_base).items())
    extra = draw(st.lists(st.tuples(st.text(min_size=1, max_size=12), st.text(max_size=30)), max_size=2))
    pairs += [(k, v) for k, v in extra if k not in dict(pairs) and k not in KNOWN_FIELDS]
    return draw(st.permutations(pairs))


@st.composite
def honest(draw: st.DrawFn, target: Target) -> Probe:
    pairs = draw(honest_pairs(target))
    how = draw(st.sampled_from(("POST", "POST", "GET", "JSON")))
    if how == "POST" and draw(st.booleans()):
        pairs = pairs + [draw(st.sampled_from(pairs))]  # a repeated identical pair signs the same
    request = encode(target, pairs, how)
    variant = draw(st.sampled_from(("plain", "charset", "lowercase-header", "chunked")))
    if variant == "charset" and how == "POST":
        request = _replace_header(request, "Content-Type", FORM + "; charset=utf-8")
    elif variant == "lowercase-header":
        request = _rename_header(request, "X-Twilio-Signature", "x-twilio-signature")
    elif variant == "chunked" and how != "GET":
        body = request.body
        chunked = f"{len(body):x}\r\n".encode() + body + b"\r\n0\r\n\r\n"
        request = RawRequest(request.method, request.target,
                             (*request.headers, ("Transfer-Encoding", "chunked")), chunked)
    return Probe(f"honest {how} {variant}", request, True, frozenset({204}), event_of(as_sent(pairs, how)))


@st.composite
def malformed(draw: st.DrawFn, target: Target) -> Probe:
    pairs = draw(honest_pairs(target))
    for _ in range(draw(st.integers(1, 3))):
        pairs = draw(_break(pairs))
    how = draw(st.sampled_from(("POST", "POST", "GET", "JSON")))
    request = encode(target, pairs, how)
    if len(request.body) > target.max_body:
        expect = frozenset({413})
    elif len(request.target) > 8000:
        expect = None  # past the request-line limit: the HTTP parser refuses it
    else:
        expect = frozenset({204, 400})
    return Probe(f"malformed {how}", request, True, expect, event_of(as_sent(pairs, how)))


@st.composite
def _break(draw: st.DrawFn, pairs: Pairs) -> Pairs:
    """One way to spoil a callback: a nasty value, a missing field, a repeat, a new field."""
    kind = draw(st.sampled_from(("value", "value", "drop", "repeat", "new", "huge", "deep")))
    name = draw(st.sampled_from(KNOWN_FIELDS))
    value = draw(st.one_of(st.sampled_from(NASTY), st.text(max_size=40),
                           st.binary(max_size=40).map(lambda b: b.decode("latin-1"))))
    rest = [(k, v) for k, v in pairs if k != name]
    if kind == "value":
        return rest + [(name, value)]
    if kind == "drop":
        return rest
    if kind == "repeat":
        return pairs + [(name, value)]
    if kind == "new":
        return pairs + [(draw(st.text(max_size=20)), value)]
    if kind == "huge":
        return rest + [(name, "A" * draw(st.integers(1_000, 80_000)))]
    depth = draw(st.integers(100, 30_000))
    return rest + [(name, "[" * depth + "]" * depth)]


@st.composite
def forged(draw: st.DrawFn, target: Target) -> Probe:
    pairs = draw(honest_pairs(target))
    how = draw(st.sampled_from(("POST", "POST", "GET", "JSON")))
    trick = draw(st.sampled_from(("none", "empty", "random", "wrong-token", "other-url", "changed-after",
                                  "added-after", "removed-after", "two-bad", "forwarded", "other-body")))
    host_url = f"http://{target.host}"
    if trick == "none":
        request = encode(target, pairs, how, token="")
    elif trick in ("empty", "random"):
        fake = "" if trick == "empty" else base64.b64encode(secrets.token_bytes(20)).decode()
        request = encode(target, pairs, how, token="", headers=(("X-Twilio-Signature", fake),))
    elif trick == "wrong-token":
        request = encode(target, pairs, how, token=secrets.token_hex(16))
    elif trick == "other-url":
        other = draw(st.sampled_from(("https://127.0.0.1", "http://evil.example", f"{host_url}/x", host_url + "/")))
        query = "" if how == "POST" else "?" + _query_of(encode(target, pairs, how))
        request = encode(target, pairs, how, sign_url=f"{other}{PATH}{query}")
    elif trick == "forwarded":
        query = "" if how == "POST" else "?" + _query_of(encode(target, pairs, how))
        request = encode(target, pairs, how, sign_url=f"https://cb.evil.example{PATH}{query}",
                         headers=(("X-Forwarded-Proto", "https"), ("X-Forwarded-Host", "cb.evil.example")))
    elif trick == "two-bad":
        fakes = tuple(("X-Twilio-Signature", base64.b64encode(secrets.token_bytes(20)).decode()) for _ in "ab")
        request = encode(target, pairs, how, token="", headers=fakes)
    elif trick == "other-body" and how == "JSON":
        request = encode(target, pairs, how)
        request = RawRequest("POST", request.target, request.headers, request.body.replace(b'"', b' "', 1))
    else:  # signed, then changed: a replay with different content
        changed = _changed(draw, pairs, trick)
        if how == "POST":
            request = encode(target, changed, how, sign_pairs=pairs)
        else:
            request = encode(target, changed, how, sign_url=host_url + encode(target, pairs, how).target)
    return Probe(f"forged {how} {trick}", request, False, frozenset({403}), event_of(pairs))


def _changed(draw: st.DrawFn, pairs: Pairs, trick: str) -> Pairs:
    # Only a parameter given once is removed or changed: with a repeated name, a JSON body
    # (where the last value wins) can come out byte for byte the honest one — no forgery.
    names = [name for name, _ in pairs]
    unique = [index for index, (name, _) in enumerate(pairs) if names.count(name) == 1] or list(range(len(pairs)))
    if trick == "removed-after":
        drop = pairs[draw(st.sampled_from(unique))]
        return [p for p in pairs if p != drop]
    if trick == "added-after":
        return pairs + [("Injected" + secrets.token_hex(3), draw(st.text(max_size=10)))]
    index = draw(st.sampled_from(unique))
    name, value = pairs[index]
    return pairs[:index] + [(name, value + "x")] + pairs[index + 1:]


def _query_of(request: RawRequest) -> str:
    return request.target.partition("?")[2]


def _replace_header(request: RawRequest, name: str, value: str) -> RawRequest:
    headers = tuple((n, value if n == name else v) for n, v in request.headers)
    return RawRequest(request.method, request.target, headers, request.body)


def _rename_header(request: RawRequest, name: str, new: str) -> RawRequest:
    headers = tuple((new if n == name else n, v) for n, v in request.headers)
    return RawRequest(request.method, request.target, headers, request.body)
