"""X-Twilio-Signature checks: a pure function of (url, params or body, header, tokens).

The HMAC itself is the official `twilio` helper's (`RequestValidator`), which already
accepts the URL with and without the default port and checks `bodySHA256` for JSON
bodies. What Twilio leaves to the application, and this module does, is rebuilding the
exact URL Twilio requested when a proxy sits in front of recvault.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from functools import lru_cache
from urllib.parse import urlsplit

from multidict import MultiDict
from twilio.request_validator import RequestValidator


@lru_cache(maxsize=64)
def _validator(token: str) -> RequestValidator:
    return RequestValidator(token)


def is_valid(
    url: str,
    params: MultiDict[str] | Mapping[str, str] | str | None,
    signature: str | None,
    tokens: Iterable[str],
) -> bool:
    """True when any of `tokens` (current, then secondary during rotation) signed the request.

    `params` is the form body (a MultiDict keeps repeated keys), None for GET, or the raw
    body text for JSON callbacks whose URL carries `bodySHA256`.
    """
    if not signature:
        return False
    for token in tokens:
        if _validator(token).validate(url, params or {}, signature):
            return True
    return False


def signed_url(
    *,
    scheme: str,
    host: str,
    raw_path_qs: str,
    public_url: str | None = None,
    forwarded_proto: str | None = None,
    forwarded_host: str | None = None,
    trust_forwarded: bool = False,
) -> str:
    """The URL Twilio signed, rebuilt from what this process received.

    Precedence: a configured public base URL, then X-Forwarded-Proto/Host when trusted,
    then the request's own scheme and Host. The raw path and query are appended exactly
    as received: re-encoding them would change characters such as `'` and `+`.
    """
    if public_url:
        base = urlsplit(public_url)
        prefix = base.path.rstrip("/")
        path = raw_path_qs if raw_path_qs.startswith(prefix + "/") else prefix + raw_path_qs
        return f"{base.scheme}://{_without_userinfo(base.netloc)}{path}"
    if trust_forwarded:
        scheme = _first(forwarded_proto) or scheme
        host = _first(forwarded_host) or host
    return f"{scheme}://{_without_userinfo(host)}{raw_path_qs}"


def _first(header: str | None) -> str | None:
    """The client-most value of a comma-separated forwarding header."""
    if not header:
        return None
    return header.split(",", 1)[0].strip() or None


def _without_userinfo(netloc: str) -> str:
    """Twilio drops `user:pass@` before signing, so the check must too."""
    return netloc.rsplit("@", 1)[-1]
