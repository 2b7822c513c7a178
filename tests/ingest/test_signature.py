"""Signature checks against Twilio's public vectors and against the official signer."""

from __future__ import annotations

import string

import pytest
from hypothesis import given
from hypothesis import settings as hsettings
from hypothesis import strategies as st
from multidict import MultiDict
from twilio.request_validator import RequestValidator

from recvault.ingest.signature import UnusableHeader, could_match, is_valid, signed_url

TOKEN = "12345"
PARAMS = {
    "CallSid": "CA1234567890ABCDE",
    "Caller": "+14158675309",
    "Digits": "1234",
    "From": "+14158675309",
    "To": "+18005551212",
}
JSON_BODY = '{"property": "value", "boolean": true}'
# Shaped like a Twilio signature (28 base64 characters) but made by nobody.
FAKE_SIGNATURE = "c2lnbmF0dXJlIHRoYXQgZmFpbHM="
BODY_HASH = "0a1ff7634d9ab3b95db5c9a2dfe9416e41502b283a80c7cf19632632f96e6620"


@pytest.mark.parametrize(
    ("url", "signature"),
    [
        ("https://mycompany.com/myapp.php?foo=1&bar=2", "RSOYDt4T1cUTdK1PDd93/VVr8B8="),
        ("https://mycompany.com:443/myapp.php?foo=1&bar=2", "kvajT1Ptam85bY51eRf/AJRuM3w="),
        ("http://mycompany.com:80/myapp.php?foo=1&bar=2", "0ZXoZLH/DfblKGATFgpif+LLRf4="),
        ("http://mycompany.com:1234/myapp.php?foo=1&bar=2", "Zmvh+3yNM1Phv2jhDCwEM3q5ebU="),
    ],
)
def test_public_form_vectors(url: str, signature: str) -> None:
    assert is_valid(url, PARAMS, signature, [TOKEN])
    assert not is_valid(url, {**PARAMS, "Digits": "9999"}, signature, [TOKEN])
    assert not is_valid(url, PARAMS, signature, ["54321"])


@pytest.mark.parametrize(
    "url",
    ["https://mycompany.com/myapp.php?foo=1&bar=2", "https://mycompany.com:443/myapp.php?foo=1&bar=2"],
)
def test_default_port_is_accepted_both_ways(url: str) -> None:
    # Signed without the port; the request may arrive with or without :443.
    assert is_valid(url, PARAMS, "RSOYDt4T1cUTdK1PDd93/VVr8B8=", [TOKEN])


def test_public_json_body_vector() -> None:
    url = f"https://mycompany.com/myapp.php?foo=1&bar=2&bodySHA256={BODY_HASH}"
    assert is_valid(url, JSON_BODY, "a9nBmqA0ju/hNViExpshrM61xv4=", [TOKEN])
    tampered = JSON_BODY.replace("value", "other")
    assert not is_valid(url, tampered, "a9nBmqA0ju/hNViExpshrM61xv4=", [TOKEN])


def test_public_repeated_keys_vector() -> None:
    params = MultiDict(
        [("Sid", "CA123"), ("SidAccount", "AC123"), ("Digits", "5678"), ("Digits", "1234"), ("Digits", "1234")]
    )
    url = "https://mycompany.com/myapp.php?foo=1&bar=2"
    assert is_valid(url, params, "IK+Dwps556ElfBT0I3Rgjkr1wJU=", [TOKEN])
    params.add("Digits", "0000")
    assert not is_valid(url, params, "IK+Dwps556ElfBT0I3Rgjkr1wJU=", [TOKEN])


def test_missing_signature_is_invalid() -> None:
    assert not is_valid("https://mycompany.com/myapp.php?foo=1&bar=2", PARAMS, None, [TOKEN])
    assert not is_valid("https://mycompany.com/myapp.php?foo=1&bar=2", PARAMS, "", [TOKEN])


def test_secondary_token_validates_during_rotation() -> None:
    url = "https://mycompany.com/myapp.php?foo=1&bar=2"
    assert is_valid(url, PARAMS, "RSOYDt4T1cUTdK1PDd93/VVr8B8=", ["new-token-1", TOKEN])
    assert not is_valid(url, PARAMS, "RSOYDt4T1cUTdK1PDd93/VVr8B8=", ["new-token-1"])


def test_signed_url_prefers_public_base_and_keeps_raw_query() -> None:
    raw = "/twilio/recording-status?a=it's+a%20test&b=%2B1"
    assert (
        signed_url(scheme="http", host="10.0.0.5:8080", raw_path_qs=raw, public_url="https://cb.example.com")
        == "https://cb.example.com/twilio/recording-status?a=it's+a%20test&b=%2B1"
    )
    # A public URL with a path prefix that the proxy strips.
    assert (
        signed_url(scheme="http", host="x", raw_path_qs="/twilio/recording-status", public_url="https://e.com/rv/")
        == "https://e.com/rv/twilio/recording-status"
    )


def test_forwarded_headers_only_when_trusted() -> None:
    args = dict(scheme="http", host="internal:8080", raw_path_qs="/p?x=1",
                forwarded_proto="https, http", forwarded_host="cb.example.com")
    assert signed_url(**args) == "http://internal:8080/p?x=1"
    assert signed_url(**args, trust_forwarded=True) == "https://cb.example.com/p?x=1"


def test_userinfo_is_dropped_before_checking() -> None:
    assert signed_url(scheme="https", host="u:p@cb.example.com", raw_path_qs="/p") == "https://cb.example.com/p"


_text = st.text(alphabet=string.ascii_letters + string.digits + " +-_.'%&=?/:,é漢", max_size=40)
_names = st.text(alphabet=string.ascii_letters + string.digits + "_", min_size=1, max_size=20)


@hsettings(max_examples=300, deadline=None)
@given(
    params=st.lists(st.tuples(_names, _text), max_size=15),
    query=st.lists(st.tuples(_names, _text), max_size=3),
    token=st.text(alphabet=string.ascii_letters + string.digits, min_size=8, max_size=40),
)
def test_agrees_with_the_official_signer(params, query, token) -> None:
    from urllib.parse import urlencode

    url = "https://cb.example.com/twilio/recording-status"
    if query:
        url += "?" + urlencode(query)
    form = MultiDict(params)
    signature = RequestValidator(token).compute_signature(url, form)
    assert is_valid(url, form, signature, ["another-token", token])
    if params:
        changed = MultiDict(params)
        # A value the name does not have yet (a repeated value is dropped before signing).
        longest = max((value for name, value in params if name == params[0][0]), key=len)
        changed.add(params[0][0], longest + "x")
        assert not is_valid(url, changed, signature, [token])


@hsettings(max_examples=300, deadline=None)
@given(
    scheme=st.sampled_from(["http", "https"]),
    port=st.sampled_from([None, 80, 443, 1234]),
    signed_port=st.sampled_from([None, 80, 443, 1234]),
    params=st.lists(st.tuples(_names, _text), max_size=6),
)
def test_accepts_exactly_what_the_official_validate_accepts(scheme, port, signed_port, params) -> None:
    def url(p):
        return f"{scheme}://cb.example.com{':' + str(p) if p else ''}/twilio/recording-status?x=1"

    form = MultiDict(params)
    signature = RequestValidator("tok-abcdef").compute_signature(url(signed_port), form)
    official = RequestValidator("tok-abcdef").validate(url(port), form, signature)
    assert is_valid(url(port), form, signature, ["tok-abcdef"]) == official


@pytest.mark.parametrize("host", ["127.0.0.1:abc", "127.0.0.1:99999", "127.0.0.1:-1", "[::1"])
def test_a_host_with_an_impossible_port_is_invalid_not_an_error(host: str) -> None:
    # The Host header comes from the client: before any signature check it can be anything.
    url = f"http://{host}/twilio/recording-status"
    assert not is_valid(url, MultiDict({"A": "1"}), FAKE_SIGNATURE, ["12345"])
    assert not is_valid(url + "?bodySHA256=00", "{}", FAKE_SIGNATURE, ["12345"])  # a JSON callback


@pytest.mark.parametrize("signature", ["RSOYDt4T1cUTdK1PDd93/VVr8B8", "RSOYDt4T1cUTdK1PDd93/VVr8B8==",
                                       "RSOYDt4T1cUTdK1PDd93/VVr8B\udcff=", "\udcff" * 28, "x"])
def test_a_signature_of_the_wrong_shape_cannot_match(signature: str) -> None:
    # aiohttp hands on a header byte that is not UTF-8 (0xff) as a surrogate character.
    url = "https://mycompany.com/myapp.php?foo=1&bar=2"
    assert not could_match(signature)
    assert not is_valid(url, PARAMS, signature, [TOKEN])
    assert could_match("RSOYDt4T1cUTdK1PDd93/VVr8B8=")


def test_a_url_that_is_not_utf8_is_invalid_not_an_error() -> None:
    url = "https://mycompany.com\udcff/myapp.php"
    assert not is_valid(url, PARAMS, FAKE_SIGNATURE, [TOKEN])
    assert not is_valid(url + "?bodySHA256=00", "{}", FAKE_SIGNATURE, [TOKEN])


def test_a_body_hash_that_decodes_to_non_ascii_is_invalid_not_an_error() -> None:
    # hmac.compare_digest raises TypeError on str with non-ASCII characters.
    url = "https://mycompany.com/myapp.php?bodySHA256=%C3%A9"
    assert not is_valid(url, JSON_BODY, FAKE_SIGNATURE, [TOKEN])


@pytest.mark.parametrize(("header", "args"), [
    ("Host", {"host": "cb.example\udcff.com"}),
    ("Host", {"host": "cb.example.com\t"}),
    ("X-Forwarded-Host", {"forwarded_host": "cb.example\udcff.com", "trust_forwarded": True}),
    ("X-Forwarded-Proto", {"forwarded_proto": "http\udcff", "trust_forwarded": True}),
])
def test_a_header_no_url_can_carry_is_unusable(header: str, args: dict) -> None:
    with pytest.raises(UnusableHeader, match=header):
        signed_url(**{"scheme": "https", "host": "cb.example.com", "raw_path_qs": "/p", **args})


def test_headers_that_are_not_used_are_not_checked() -> None:
    odd = "cb.example\udcff.com"
    assert signed_url(scheme="https", host=odd, raw_path_qs="/p", public_url="https://e.com") == "https://e.com/p"
    assert signed_url(scheme="https", host="cb.example.com", raw_path_qs="/p", forwarded_host=odd,
                      forwarded_proto=odd) == "https://cb.example.com/p"
