"""Who may use the operations routes: `Authorization: Bearer $RECVAULT_API_TOKEN`, or the login cookie.

Scripts send the bearer token. People sign in once at `/status/login` with the same token
(and, optionally, their name); the answer sets a cookie that carries no token, only an
expiry, the name and an HMAC of both keyed with the token — rotating the token signs
everyone out. The cookie is `HttpOnly` and `SameSite=Strict`, so no other site can make a
browser use it (a media link opened from elsewhere asks for the login again).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
import time

from aiohttp import web

from recvault.ops.recordings import Caller

COOKIE = "recvault_ops"
# Seconds a login lasts.
LOGIN_SECONDS = 12 * 3600
# The header a script (or a proxy that knows the person) names the person with.
USER_HEADER = "X-Recvault-User"
# A person's name as recorded in the audit trail: printable ASCII, at most this long.
_USER = re.compile(r"[\x20-\x7e]{1,128}")


class Denied(Exception):
    """No usable credential: answered 401 (or 400 for a malformed user name) with this reason."""

    def __init__(self, reason: str, status: int = 401) -> None:
        super().__init__(reason)
        self.reason = reason
        self.status = status


def fingerprint(token: str) -> str:
    """Names the token in audit records without revealing it (the first 12 hex of its SHA-256)."""
    return hashlib.sha256(token.encode()).hexdigest()[:12]


def authenticate(request: web.Request, token: str) -> Caller:
    """The caller of `request`, from its bearer token or login cookie; Denied when neither is valid."""
    header = request.headers.get("Authorization")
    if header is not None:
        scheme, _, given = header.partition(" ")
        if scheme.lower() != "bearer" or not given.strip():
            raise Denied("Authorization must be 'Bearer <token>'")
        if not same_secret(given.strip(), token):
            raise Denied("the bearer token is not RECVAULT_API_TOKEN")
        return Caller(f"api-token:{fingerprint(token)}", user_label(request.headers.get(USER_HEADER)),
                      request.remote)
    cookie = request.cookies.get(COOKIE)
    if cookie:
        user = read_cookie(cookie, token, now=time.time())
        if user is None:
            raise Denied("the login has expired or is not valid; sign in again at /status/login")
        return Caller(f"status-login:{fingerprint(token)}", user or None, request.remote)
    raise Denied("send Authorization: Bearer <RECVAULT_API_TOKEN> (people: sign in at /status/login)")


def user_label(value: str | None) -> str | None:
    """The person a request names, as the audit trail records it; Denied(400) when unusable."""
    if value is None or value == "":
        return None
    if not _USER.fullmatch(value):
        raise Denied(f"{USER_HEADER} must be 1 to 128 printable ASCII characters", status=400)
    return value


def make_cookie(token: str, user: str | None, *, now: float) -> str:
    """`<expiry>.<name, base64url>.<HMAC-SHA256 of both, keyed with the token>`."""
    expires = str(int(now) + LOGIN_SECONDS)
    name = base64.urlsafe_b64encode((user or "").encode()).decode().rstrip("=")
    return f"{expires}.{name}.{_mac(token, expires, name)}"


def read_cookie(cookie: str, token: str, *, now: float) -> str | None:
    """The user a valid, unexpired cookie names ('' for none); None when it is not valid."""
    parts = cookie.split(".")
    if len(parts) != 3 or not parts[0].isdigit():
        return None
    expires, name, mac = parts
    if not same_secret(mac, _mac(token, expires, name)) or int(expires) <= now:
        return None
    try:
        return base64.urlsafe_b64decode(name + "=" * (-len(name) % 4)).decode("ascii")
    except (binascii.Error, ValueError):
        return None


def _mac(token: str, expires: str, name: str) -> str:
    return hmac.new(token.encode(), f"recvault-login|{expires}|{name}".encode(), hashlib.sha256).hexdigest()


def same_secret(given: str, expected: str) -> bool:
    """Constant-time comparison (bytes: a header may hold characters compare_digest refuses as str)."""
    return hmac.compare_digest(given.encode("utf-8", "surrogateescape"), expected.encode())
