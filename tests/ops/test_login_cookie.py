"""The login cookie: it names its user, expires, and is worthless under another token or once altered."""

from __future__ import annotations

from recvault.ingest.operator.auth import LOGIN_SECONDS, make_cookie, read_cookie

TOKEN = "a-token-of-twenty-four-ch"


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
