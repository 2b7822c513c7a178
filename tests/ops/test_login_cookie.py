"""The login cookie: it names its user, expires, and is worthless under another token or once altered."""

from __future__ import annotations

import pytest

from recvault.ingest.ops.auth import LOGIN_SECONDS, Denied, cookie_user, make_cookie, read_cookie

TOKEN = "Zt8pWq3nLr6vKx1bHc9mDs4fGj7yNa2e"


def test_a_cookie_names_its_user_until_it_expires() -> None:
    cookie = make_cookie(TOKEN, "Dana Ops", now=1_000_000)
    assert read_cookie(cookie, TOKEN, now=1_000_000 + LOGIN_SECONDS - 1) == "Dana Ops"
    assert read_cookie(cookie, TOKEN, now=1_000_000 + LOGIN_SECONDS) is None
    assert read_cookie(make_cookie(TOKEN, None, now=1_000_000), TOKEN, now=1_000_001) == ""
    assert TOKEN not in cookie


def test_another_token_or_any_change_invalidates_it() -> None:
    cookie = make_cookie(TOKEN, "Dana", now=1_000_000)
    expires, name, mac = cookie.split(".")
    assert read_cookie(cookie, TOKEN + "x", now=1_000_001) is None  # the token was rotated
    assert read_cookie(f"{int(expires) + 3600}.{name}.{mac}", TOKEN, now=1_000_001) is None
    assert read_cookie(f"{expires}.U2Ft.{mac}", TOKEN, now=1_000_001) is None  # another name
    assert read_cookie("garbage", TOKEN, now=1_000_001) is None


def test_a_refused_cookie_says_whether_it_ran_out_or_was_never_valid() -> None:
    cookie = make_cookie(TOKEN, "Dana", now=1_000_000)
    with pytest.raises(Denied) as expired:
        cookie_user(cookie, TOKEN, now=1_000_000 + LOGIN_SECONDS)
    assert expired.value.label == "expired" and "/status/login" in expired.value.reason
    for bad in (cookie[:-1] + ("0" if cookie[-1] != "0" else "1"), "garbage", cookie.replace(".", "", 1)):
        with pytest.raises(Denied) as refused:
            cookie_user(bad, TOKEN, now=1_000_001)
        assert refused.value.label == "bad_cookie"
    with pytest.raises(Denied) as rotated:
        cookie_user(cookie, "Another-token-Qw8Er5Ty2Ui9Op4As", now=1_000_001)
    assert rotated.value.label == "bad_cookie"
