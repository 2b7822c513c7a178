"""Where Twilio credentials may go: the origin `requests` will really connect to, on the allowlist.

urllib's `urlsplit` and urllib3 (which `requests` uses) read some URLs differently. In
`https://evil.example\\@api.twilio.com/` urlsplit sees the user "evil.example\\" at
api.twilio.com, while urllib3, like browsers, ends the host at the backslash and connects
to evil.example. So the check reads the URL exactly as `requests` prepared it for sending,
refuses any URL the two parsers read differently, and refuses backslashes and user
information outright: Twilio sends neither.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from urllib3.exceptions import LocationParseError
from urllib3.util import parse_url

from recvault.errors import ForeignHost

# The port each scheme implies when a URL names none.
DEFAULT_PORTS = {"http": 80, "https": 443}
Origin = tuple[str, str, int]


def origin_as_sent(prepared_url: str) -> Origin:
    """(scheme, host, port) of a URL as urllib3 reads it: where a request for it connects."""
    try:
        parsed = parse_url(prepared_url)
    except LocationParseError:
        raise ForeignHost(f"{_shown(prepared_url)} cannot be parsed; no request sent") from None
    scheme = (parsed.scheme or "").lower()
    host = (parsed.host or "").lower().removeprefix("[").removesuffix("]")
    return scheme, host, parsed.port or DEFAULT_PORTS.get(scheme, 0)


class CredentialTargets:
    """Allows a URL only when credentials may be sent where the HTTP client will send them."""

    def __init__(self, allowed_hosts: frozenset[str], base_origin: Origin) -> None:
        self._allowed = allowed_hosts
        self._base_origin = base_origin

    def check(self, url: str, prepared_url: str) -> None:
        """Raise ForeignHost unless `prepared_url` (what `requests` made of `url`) may get credentials."""
        if "\\" in url:
            raise ForeignHost(f"{_shown(url)} contains a backslash, which URL parsers read differently; "
                              "no request sent")
        sent = origin_as_sent(prepared_url)
        if parse_url(prepared_url).auth is not None:
            raise ForeignHost(f"{_shown(url)} names a user before its host; no request sent")
        if _origin_as_written(url) != sent:
            raise ForeignHost(f"{_shown(url)} is read as two different hosts by URL parsers; no request sent")
        scheme, host, port = sent
        if host not in self._allowed:
            raise ForeignHost(f"{host!r} is not an allowed Twilio host; no request sent")
        # Credentials travel only over HTTPS on the default port, or to the configured API
        # base exactly as configured (a local simulator or proxy may be plain HTTP).
        if sent != self._base_origin and (scheme, port) != ("https", 443):
            raise ForeignHost(f"{scheme}://{host}:{port} is not HTTPS on the default port; no request sent")


def _origin_as_written(url: str) -> Origin | None:
    """(scheme, host, port) as urllib's urlsplit reads `url`; None when it cannot."""
    try:
        parts = urlsplit(url)
        scheme = parts.scheme.lower()
        return scheme, (parts.hostname or "").lower(), parts.port or DEFAULT_PORTS.get(scheme, 0)
    except ValueError:  # a port that is not a number or out of range
        return None


def _shown(url: str) -> str:
    """A URL for a log line or dead-letter reason: scheme and host only, user information masked."""
    start, slashes, authority = "/".join(url.split("/", 3)[:3]).rpartition("//")
    return repr(f"{start}{slashes}{'…@' if '@' in authority else ''}{authority.rpartition('@')[2]}")
