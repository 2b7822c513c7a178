"""Who may use the operations routes, and who they are.

Credentials. Scripts send `Authorization: Bearer $RECVAULT_API_TOKEN`. People sign in once at
`/status/login` with the same token; the answer sets a cookie that carries no token, only an
expiry, the person's name and an HMAC of both keyed with the token — rotating the token signs
everyone out. The cookie is `HttpOnly` and `SameSite=Strict`, so no other site can make a browser
use it (a media link opened from elsewhere asks for the sign-in again), and `Secure` whenever the
sign-in arrived over TLS. Signing out (`POST /status/logout`) clears it.

The person. With RECVAULT_IDENTITY_HEADER set, the authenticating proxy in front (oauth2-proxy)
names them: a sign-in belongs to the person the proxy named when it was made, and is refused
without that header or for someone else. Otherwise — or for a script's request the proxy did not
name — the name typed at sign-in or sent as `X-Recvault-User` is recorded as the caller's own
(`user_source` "declared"). The client's address is X-Forwarded-For's entry
RECVAULT_FORWARDED_FOR_HOPS from the right when forwarded headers are trusted, else the
connection's peer.

Refusals. Every request refused for want of a valid credential is logged (never with what it
sent) and counted in `recvault_ops_auth_failures_total{reason}`; a wrong token makes its address
back off (throttle.py), and tries while it waits are `429` and counted in
`recvault_ops_auth_throttled_total`.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import ipaddress
import logging
import re
import time
from dataclasses import dataclass

from aiohttp import web
from prometheus_client import CollectorRegistry, Counter

from recvault.ingest.ops.throttle import Throttle
from recvault.ops.recordings import NAMED_BY_CALLER, NAMED_BY_PROXY, Caller
from recvault.settings import Settings

log = logging.getLogger("recvault.ops")

COOKIE = "recvault_ops"
# Seconds a login lasts.
LOGIN_SECONDS = 12 * 3600
# The header a script names the person with (recorded as the caller's own word).
USER_HEADER = "X-Recvault-User"
# A person's name as recorded in the audit trail: printable ASCII, at most this long.
_USER = re.compile(r"[\x20-\x7e]{1,128}")
# A name the proxy gives (an e-mail address is at most 254 characters): printable ASCII, no
# surrounding space.
_IDENTITY = re.compile(r"[\x21-\x7e](?:[\x20-\x7e]{0,254}[\x21-\x7e])?")
# Why a request was refused, as `recvault_ops_auth_failures_total` labels it.
REASONS = ("missing", "malformed", "wrong_token", "bad_cookie", "expired", "no_identity", "other_identity",
           "bad_identity")
# Refusals that are part of normal use (a first visit, a login that ran out): logged at INFO, the rest WARNING.
_ROUTINE = {"missing", "expired"}


class Denied(Exception):
    """No usable credential: answered 401 (or 400 for a malformed user name) with this reason."""

    def __init__(self, reason: str, status: int = 401, label: str = "missing") -> None:
        super().__init__(reason)
        self.reason = reason
        self.status = status
        self.label = label


class Throttled(Exception):
    """The client's address is backing off after failed sign-ins: 429, try again in `seconds`."""

    def __init__(self, seconds: int) -> None:
        super().__init__(f"too many failed sign-ins from this address; try again in {seconds} s")
        self.reason = str(self)
        self.seconds = seconds


@dataclass(frozen=True)
class Client:
    """Where a request came from: the client's address, and the connection's peer when they differ."""

    address: str | None
    peer: str | None = None


class Guard:
    """Checks the operations routes' credentials and names their callers; one per app."""

    def __init__(self, settings: Settings, registry: CollectorRegistry | None = None, *,
                 throttle: Throttle | None = None) -> None:
        self.token = settings.api_token.get_secret_value()
        self.fingerprint = fingerprint(self.token)
        self.identity_header = settings.identity_header or None
        self.trust_forwarded = settings.trust_forwarded_headers
        self.hops = settings.forwarded_for_hops
        self.public_https = str(settings.public_url or "").startswith("https:")
        self.throttle = throttle or Throttle()
        self.failures = Counter(
            "recvault_ops_auth_failures",
            "Operator requests refused for want of a valid credential (401, or a browser sent to sign in), by reason",
            ["reason"], registry=registry)
        self.throttled = Counter(
            "recvault_ops_auth_throttled",
            "Sign-in tries refused 429 while their address backs off after failed ones", registry=registry)

    # --- who is asking -------------------------------------------------------------------
    def caller(self, request: web.Request) -> Caller:
        """The caller of `request`, from its bearer token or login cookie; Denied or Throttled otherwise."""
        client = self.client(request)
        header = request.headers.get("Authorization")
        if header is not None:
            scheme, _, given = header.partition(" ")
            if scheme.lower() != "bearer" or not given.strip():
                raise self.refuse(request, client, Denied("Authorization must be 'Bearer <token>'", label="malformed"))
            self.check_token(request, client, given.strip(), "the bearer token is not RECVAULT_API_TOKEN")
            user, source = self.person(request, client, declared=request.headers.get(USER_HEADER))
            return Caller(f"api-token:{self.fingerprint}", user, client.address, source, client.peer)
        cookie = request.cookies.get(COOKIE)
        if not cookie:
            raise self.refuse(request, client, Denied(
                "send Authorization: Bearer <RECVAULT_API_TOKEN> (people: sign in at /status/login)"))
        try:
            name = cookie_user(cookie, self.token, now=time.time())
        except Denied as denied:
            raise self.refuse(request, client, denied) from None
        credential = f"status-login:{self.fingerprint}"
        if self.identity_header is None:
            return Caller(credential, name or None, client.address, NAMED_BY_CALLER if name else None, client.peer)
        identity, _ = self.person(request, client, required=True)
        if identity != name:
            raise self.refuse(request, client, Denied(
                "this sign-in was made by someone else; sign in again at /status/login", label="other_identity"))
        return Caller(credential, identity, client.address, NAMED_BY_PROXY, client.peer)

    def sign_in(self, request: web.Request, given: str, typed_name: str) -> str | None:
        """Check a sign-in form; the name its cookie carries. Denied or Throttled when refused.

        The proxy's identity, when required, is checked before the token: a request that did not come
        through the proxy gets no try at the token."""
        client = self.client(request)
        if self.identity_header is not None:
            name, _ = self.person(request, client, required=True)
        else:
            name = user_label(typed_name)
        self.check_token(request, client, given, "the token is not RECVAULT_API_TOKEN")
        return name

    def person(self, request: web.Request, client: Client, *, declared: str | None = None,
               required: bool = False) -> tuple[str | None, str | None]:
        """(name, who named them): the proxy's identity header when set and present, else `declared`."""
        if self.identity_header is not None:
            values = request.headers.getall(self.identity_header, [])
            if len(values) > 1 or (values and not _IDENTITY.fullmatch(values[0])):
                raise self.refuse(request, client, Denied(
                    f"{self.identity_header} must be one name of printable ASCII, at most 256 characters",
                    label="bad_identity"))
            if values:
                return values[0], NAMED_BY_PROXY
            if required:
                raise self.refuse(request, client, Denied(
                    f"no {self.identity_header}: people sign in through the sign-in proxy", label="no_identity"))
        label = user_label(declared)
        return label, NAMED_BY_CALLER if label else None

    def named(self, request: web.Request) -> str | None:
        """The person the proxy names in `request`, when it names one usable (nothing is logged or counted)."""
        if self.identity_header is None:
            return None
        values = request.headers.getall(self.identity_header, [])
        return values[0] if len(values) == 1 and _IDENTITY.fullmatch(values[0]) else None

    def client(self, request: web.Request) -> Client:
        """The client's address: from X-Forwarded-For when trusted and usable, else the connection's peer."""
        peer = request.remote
        if self.trust_forwarded:
            entries = [entry for value in request.headers.getall("X-Forwarded-For", []) for entry in value.split(",")]
            if len(entries) >= self.hops:
                address = _address(entries[-self.hops])
                if address is not None:
                    return Client(address, peer if peer != address else None)
        return Client(peer)

    def over_tls(self, request: web.Request) -> bool:
        """Whether the request came over TLS: directly, by the trusted proxy's word, or per RECVAULT_PUBLIC_URL."""
        if request.secure or self.public_https:
            return True
        if not self.trust_forwarded:
            return False
        protos = [proto.strip().lower() for value in request.headers.getall("X-Forwarded-Proto", [])
                  for proto in value.split(",")]
        return "https" in protos or any(str(f.get("proto", "")).lower() == "https" for f in request.forwarded)

    # --- the token, and refusals ---------------------------------------------------------
    def check_token(self, request: web.Request, client: Client, given: str, reason: str) -> None:
        """Denied unless `given` is the token; Throttled, without comparing, while the address backs off."""
        if not given:
            raise self.refuse(request, client, Denied(reason))
        wait = self.throttle.wait(client.address)
        if wait:
            self.throttled.inc()
            raise Throttled(wait)
        if same_secret(given, self.token):
            self.throttle.succeeded(client.address)
            return
        delay = self.throttle.failed(client.address)
        raise self.refuse(request, client, Denied(reason, label="wrong_token"), retry_after=delay)

    def refuse(self, request: web.Request, client: Client, denied: Denied, *, retry_after: int = 0) -> Denied:
        """Log and count a 401 (what was sent is never logged); `denied`, to raise."""
        if denied.status == 401:
            self.failures.labels(denied.label).inc()
            extra: dict[str, object] = {"status": 401, "reason": denied.label, "detail": denied.reason,
                                        "method": request.method, "path": request.path, "remote": client.address}
            if client.peer:
                extra["peer"] = client.peer
            if retry_after:
                extra["retry_after"] = retry_after  # the address now backs off
            log.log(logging.INFO if denied.label in _ROUTINE else logging.WARNING, "operator request refused",
                    extra=extra)
        return denied


def _address(entry: str) -> str | None:
    """An X-Forwarded-For entry as an IP address (a port or IPv6 brackets dropped); None when it is not one."""
    entry = entry.strip()
    if entry.startswith("["):
        entry = entry[1:].split("]", 1)[0]
    elif entry.count(":") == 1:
        entry = entry.split(":", 1)[0]
    try:
        return str(ipaddress.ip_address(entry))
    except ValueError:
        return None


def fingerprint(token: str) -> str:
    """Names the token in audit records without revealing it (the first 12 hex of its SHA-256)."""
    return hashlib.sha256(token.encode()).hexdigest()[:12]


def user_label(value: str | None) -> str | None:
    """The person a request names, as the audit trail records it; Denied(400) when unusable."""
    if value is None or value == "":
        return None
    if not _USER.fullmatch(value):
        raise Denied(f"{USER_HEADER} (or the name typed at sign-in) must be 1 to 128 printable ASCII characters",
                     status=400)
    return value


def make_cookie(token: str, user: str | None, *, now: float) -> str:
    """`<expiry>.<name, base64url>.<HMAC-SHA256 of both, keyed with the token>`."""
    expires = str(int(now) + LOGIN_SECONDS)
    name = base64.urlsafe_b64encode((user or "").encode()).decode().rstrip("=")
    return f"{expires}.{name}.{_mac(token, expires, name)}"


def cookie_user(cookie: str, token: str, *, now: float) -> str:
    """The user a valid, unexpired cookie names ('' for none); Denied ('expired' or 'bad_cookie') otherwise."""
    bad = Denied("the login is not valid; sign in again at /status/login", label="bad_cookie")
    parts = cookie.split(".")
    if len(parts) != 3 or not parts[0].isdigit():
        raise bad
    expires, name, mac = parts
    if not same_secret(mac, _mac(token, expires, name)):
        raise bad
    if int(expires) <= now:
        raise Denied("the login has expired; sign in again at /status/login", label="expired")
    try:
        return base64.urlsafe_b64decode(name + "=" * (-len(name) % 4)).decode("ascii")
    except (binascii.Error, ValueError):
        raise bad from None


def read_cookie(cookie: str, token: str, *, now: float) -> str | None:
    """The user a valid, unexpired cookie names ('' for none); None when it is not valid."""
    try:
        return cookie_user(cookie, token, now=now)
    except Denied:
        return None


def _mac(token: str, expires: str, name: str) -> str:
    return hmac.new(token.encode(), f"recvault-login|{expires}|{name}".encode(), hashlib.sha256).hexdigest()


def same_secret(given: str, expected: str) -> bool:
    """Constant-time comparison (bytes: a header may hold characters compare_digest refuses as str)."""
    return hmac.compare_digest(given.encode("utf-8", "surrogateescape"), expected.encode())
