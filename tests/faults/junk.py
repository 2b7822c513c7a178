"""Junk for the callback endpoint: bytes, encodings, lengths, methods, paths, Host headers."""

from __future__ import annotations

import base64
import hashlib
import secrets
from urllib.parse import urlencode

from hypothesis import strategies as st

from tests.faults.fuzz import FORM, PATH, Probe, Target, as_sent, encode, event_of, honest_pairs
from tests.faults.rawhttp import RawRequest

CONTENT_TYPES = (FORM, "application/json", "text/plain", "multipart/form-data; boundary=x", "",
                 "application/x-www-form-urlencoded; charset=latin-1", "application/xml", "*/*",
                 "application/x-www-form-urlencoded, application/json", "APPLICATION/JSON")
BAD_HOSTS = ("127.0.0.1:abc", "127.0.0.1:99999", "[::1", "a b", "", "127.0.0.1:-1", "user:pw@127.0.0.1",
             "%00", "127.0.0.1:0x50", "evil.example:")


@st.composite
def junk(draw: st.DrawFn, target: Target) -> Probe:
    """A request no honest client sends: refused any way but 5xx, never accepted unsigned."""
    kind = draw(st.sampled_from(("bytes", "truncated", "latin-1", "bad-percent", "oversize", "short-body",
                                 "bad-length", "method", "path", "host", "big-header", "no-host",
                                 "deep-json", "odd-target")))
    host = ("Host", target.host)
    fake_signature = ("X-Twilio-Signature", base64.b64encode(secrets.token_bytes(20)).decode())
    expect: frozenset[int] | None = None
    may_hang = False
    pairs = draw(honest_pairs(target))
    if kind == "bytes":
        ctype = draw(st.sampled_from(CONTENT_TYPES))
        request = RawRequest("POST", PATH, (host, ("Content-Type", ctype), fake_signature),
                             draw(st.binary(max_size=2000)))
    elif kind == "truncated":
        full = encode(target, pairs, "POST")
        cut = draw(st.integers(0, max(0, len(full.body) - 1)))
        request = RawRequest("POST", PATH, full.headers, full.body[:cut])
    elif kind == "latin-1":
        body = "&".join(f"{k}={v}" for k, v in pairs + [("Note", "café ñ ü")]).encode("latin-1", "replace")
        request = RawRequest("POST", PATH, (host, ("Content-Type", FORM), fake_signature), body)
    elif kind == "bad-percent":
        body = urlencode(pairs).encode() + b"&RecordingSource=%ff%fe%80"
        request = RawRequest("POST", PATH, (host, ("Content-Type", FORM), fake_signature), body)
    elif kind == "oversize":
        body = urlencode(pairs + [("Pad", "x" * (target.max_body + draw(st.integers(1, 200_000))))]).encode()
        chunked = draw(st.booleans())
        framing = (("Transfer-Encoding", "chunked"),) if chunked else ()
        if chunked:
            body = f"{len(body):x}\r\n".encode() + body + b"\r\n0\r\n\r\n"
        request = RawRequest("POST", PATH, (host, ("Content-Type", FORM), fake_signature, *framing), body)
        expect = frozenset({413})
        may_hang = True  # the server may answer and close before it has read everything
    elif kind == "short-body":
        full = encode(target, pairs, "POST")
        announced = len(full.body) + draw(st.integers(1, 10_000_000))
        request = RawRequest("POST", PATH, (*full.headers, ("Content-Length", str(announced))), full.body,
                             half_close=True)
        may_hang = True
    elif kind == "bad-length":
        value = draw(st.sampled_from(("abc", "-1", "1 1", "0x10", "", "99999999999999999999")))
        full = encode(target, pairs, "POST")
        request = RawRequest("POST", PATH, (*full.headers, ("Content-Length", value)), full.body, half_close=True)
        may_hang = True
    elif kind == "method":
        method = draw(st.sampled_from(("PUT", "DELETE", "PATCH", "OPTIONS", "TRACE", "PROPFIND")))
        full = encode(target, pairs, "POST")
        request = RawRequest(method, PATH, full.headers, full.body)
        expect = frozenset({405})
    elif kind == "path":
        path = draw(st.sampled_from((PATH + "/", PATH.upper(), "/" + PATH, PATH + "%2F", PATH + ";x",
                                     "/twilio/recording-status/../recording-status", "/twilio/", "/",
                                     "/twilio/recording-status.json", "/_sim/recordings")))
        full = encode(target, pairs, "POST")
        request = RawRequest("POST", path, full.headers, full.body)
    elif kind == "host":
        bad = draw(st.sampled_from(BAD_HOSTS))
        honest_sig = draw(st.booleans())
        how = draw(st.sampled_from(("POST", "GET", "JSON")))
        request = encode(target, pairs, how, host=bad,
                         token=None if honest_sig else "", headers=() if honest_sig else (fake_signature,))
        return Probe(f"junk host {bad!r}", request, honest_sig, None, event_of(as_sent(pairs, how)))
    elif kind == "big-header":  # honestly signed, padded with a header past any sane size
        full = encode(target, pairs, "POST")
        size = draw(st.integers(4_000, 100_000))
        request = RawRequest("POST", PATH, (*full.headers, ("X-Padding", "p" * size)), full.body)
        return Probe("junk big-header", request, True, None, event_of(pairs))
    elif kind == "no-host":
        request = encode(target, pairs, "POST", host="-", token="", headers=(fake_signature,))
    elif kind == "deep-json":
        depth = draw(st.integers(1_000, target.max_body // 5 - 10))
        body = (draw(st.sampled_from(("[", '{"a":'))) * depth).encode()
        target_path = f"{PATH}?bodySHA256={hashlib.sha256(body).hexdigest()}"
        request = RawRequest("POST", target_path, (host, ("Content-Type", "application/json"), fake_signature),
                             body)
    else:  # odd bytes in the request target
        odd = draw(st.sampled_from(("\x00", "é", "%", "%zz", " ", "\t", "#frag", "?a=1?b=2", "\\")))
        request = RawRequest("GET", PATH + "?" + urlencode(pairs) + odd, (host, fake_signature))
    return Probe(f"junk {kind}", request, False, expect, may_hang=may_hang)
