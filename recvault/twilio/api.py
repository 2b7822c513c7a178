"""The parts of Twilio's REST API recvault uses: Recording fetch, list, delete, and media.

Why not the `twilio` REST client here: it reads whole bodies (media must stream in
bounded memory), hands back parsed objects (the archive keeps Twilio's JSON fields
verbatim) and hides the status codes that decide retry versus dead-letter. This module
uses `requests` (already a dependency of `twilio`) and sends credentials only to hosts on
the allowlist, following redirects itself so that no redirect can carry them elsewhere;
each URL is checked as `requests` prepared it for sending (see credential_targets.py).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from urllib.parse import urljoin, urlsplit

import requests
import requests.adapters

from recvault.errors import (
    ForeignHost,
    MediaNotReady,
    PermanentError,
    TwilioAuthFailed,
    TwilioUnavailable,
)
from recvault.settings import Settings
from recvault.twilio.credential_targets import CredentialTargets, origin_as_sent

# Twilio's error 20429 (too many requests) and 5xx are worth retrying; so are these.
RETRYABLE = {429, 500, 502, 503, 504}
MAX_REDIRECTS = 3
CHUNK = 256 << 10


# Twilio's error 16113: "Cannot download a dual-channel presentation of a mono recording".
# Only this answer means "ask for mono instead"; any other 400 is a real refusal.
NO_DUAL_VERSION = "16113"


class DualUnavailable(Exception):
    """Twilio has no 2-channel version of this recording (400 with error 16113)."""


@dataclass
class Media:
    """An open media download: its type, announced length and content chunks."""

    content_type: str
    content_length: int | None
    chunks: Iterator[bytes]


class TwilioApi:
    """Authenticated, allowlisted access to Twilio's recording endpoints."""

    def __init__(
        self,
        *,
        base_url: str,
        allowed_hosts: frozenset[str],
        credentials: Callable[[str], tuple[str, str]],
        connect_timeout: float = 5.0,
        read_timeout: float = 60.0,
        on_error: Callable[[int], None] | None = None,
        connections: int = 10,
        download_deadline: float | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self._targets = CredentialTargets(allowed_hosts, origin_as_sent(_prepared_url(self.base_url)))
        self._allowed = allowed_hosts
        self._credentials = credentials
        self._timeout = (connect_timeout, read_timeout)
        self._session = requests.Session()
        # One session serves every archive a threads worker runs at once: a pool as large as
        # that, or connections beyond the pool's size would be opened and thrown away each time.
        adapter = requests.adapters.HTTPAdapter(pool_connections=4, pool_maxsize=connections)
        self._session.mount("https://", adapter)
        self._session.mount("http://", adapter)
        # The longest a media download may take (slow-drip protection; see _checked_chunks).
        self._download_deadline = download_deadline
        self._session.headers["User-Agent"] = "recvault"
        # Told the HTTP status of every answer of 400 or more, and 0 for a request that got none.
        self._on_error = on_error or (lambda status: None)

    @classmethod
    def from_settings(cls, settings: Settings, *, on_error: Callable[[int], None] | None = None) -> TwilioApi:
        """The client a worker or a command uses: this deployment's API base, allowlist and credentials."""
        return cls(
            base_url=str(settings.twilio_api_base_url),
            allowed_hosts=settings.allowed_media_hosts,
            credentials=settings.download_credentials,
            on_error=on_error,
            # Each archive in flight holds at most two: the Recording resource and its media.
            connections=max(10, 2 * settings.archives_in_flight()),
            # What Celery's soft time limit was for prefork: a download that takes longer goes
            # back through the retry path (the threads pool enforces no time limit).
            download_deadline=max(settings.task_time_limit_seconds - 60, 1),
        )

    def close(self) -> None:
        self._session.close()

    # --- resources ------------------------------------------------------------
    def recording_url(self, account_sid: str, recording_sid: str) -> str:
        """The Recording resource at this deployment's API base (its Twilio region)."""
        return f"{self.base_url}/2010-04-01/Accounts/{account_sid}/Recordings/{recording_sid}"

    def require_allowed(self, url: str) -> None:
        """ForeignHost unless `url` names a host on the allowlist (nothing is sent either way)."""
        host = (urlsplit(url).hostname or "").lower()
        if host not in self._allowed:
            raise ForeignHost(f"{host!r} is not an allowed Twilio host; no request sent")

    def fetch_recording(self, recording_url: str, account_sid: str) -> dict:
        """The Recording resource as Twilio's JSON (snake_case fields, verbatim)."""
        with self._request("GET", recording_url + ".json", account_sid) as response:
            return _json(response)

    def delete_recording(self, recording_url: str, account_sid: str) -> None:
        """Irreversible at Twilio: callers must have verified the archived copy first."""
        with self._request("DELETE", recording_url + ".json", account_sid):
            return

    def list_recording_pages(
        self, account_sid: str, *, created_after: str | None = None,
        created_before: str | None = None, page_size: int = 1000,
    ) -> Iterator[list[dict]]:
        """Each page of an account's recordings in a DateCreated window (YYYY-MM-DD, inclusive)."""
        query = [("PageSize", str(page_size))]
        if created_after:
            query.append(("DateCreated>", created_after))
        if created_before:
            query.append(("DateCreated<", created_before))
        url: str | None = f"{self.base_url}/2010-04-01/Accounts/{account_sid}/Recordings.json"
        params: list[tuple[str, str]] | None = query
        while url:
            with self._request("GET", url, account_sid, params=params) as response:
                page = _json(response)
            yield list(page.get("recordings", []))
            next_uri = page.get("next_page_uri")
            url = urljoin(self.base_url + "/", next_uri) if next_uri else None
            params = None

    # --- media ----------------------------------------------------------------
    @contextmanager
    def open_media(self, recording_url: str, account_sid: str, *, fmt: str, channels: int) -> Iterator[Media]:
        """Stream `fmt` media; raise DualUnavailable when 2 channels were asked and none exist."""
        params = {"RequestedChannels": "2"} if channels == 2 else None
        with self._request("GET", f"{recording_url}.{fmt}", account_sid, params=params,
                           stream=True, dual=channels == 2) as response:
            length = response.headers.get("Content-Length")
            yield Media(
                content_type=response.headers.get("Content-Type", "application/octet-stream"),
                content_length=int(length) if length and length.isdigit() else None,
                chunks=_checked_chunks(response, int(length) if length and length.isdigit() else None,
                                       self._download_deadline),
            )

    # --- plumbing -------------------------------------------------------------
    @contextmanager
    def _request(self, method: str, url: str, account_sid: str, *,
                 params: dict[str, str] | list[tuple[str, str]] | None = None,
                 stream: bool = False, dual: bool = False) -> Iterator[requests.Response]:
        auth = self._credentials(account_sid)
        for _ in range(MAX_REDIRECTS + 1):
            prepared = self._prepare(method, url, params, auth)
            try:
                # As Session.request would: proxies and CA bundle from the environment. The adapter
                # sends the checked request as it is; Session.send would also parse a redirect's
                # Location on its own (with urlparse, raising on a bad port) to offer the next hop.
                sent_url = prepared.url or url  # always set once prepared
                environment = self._session.merge_environment_settings(sent_url, {}, stream, None, None)
                adapter = self._session.get_adapter(sent_url)
                response = adapter.send(prepared, timeout=self._timeout, **environment)
                if not stream:
                    _ = response.content  # read here, where a cut body is TwilioUnavailable
            except requests.RequestException as error:
                self._on_error(0)
                raise TwilioUnavailable(f"{method} {_path(url)}: {type(error).__name__}") from None
            if response.is_redirect:
                response.close()
                url, params = _redirect_target(url, response.headers["Location"]), None
                continue
            if response.status_code >= 400:
                self._on_error(response.status_code)
            try:
                _raise_for(response, method, url, dual=dual)
                yield response
            finally:
                response.close()
            return
        raise TwilioUnavailable(f"{method} {_path(url)}: too many redirects")

    def _prepare(self, method: str, url: str, params: dict[str, str] | list[tuple[str, str]] | None,
                 auth: tuple[str, str]) -> requests.PreparedRequest:
        """The request exactly as it would be sent; ForeignHost when credentials may not go there."""
        try:
            prepared = self._session.prepare_request(requests.Request(method, url, params=params, auth=auth))
        except (requests.RequestException, ValueError):  # InvalidURL, MissingSchema, a bad IDNA host
            raise ForeignHost(f"{_path(url)} cannot be prepared as an HTTP request; no request sent") from None
        self._targets.check(url, prepared.url or "")
        return prepared


def _raise_for(response: requests.Response, method: str, url: str, *, dual: bool) -> None:
    status = response.status_code
    if status < 400:
        return
    where = f"{method} {_path(url)} answered {status}"
    code = _twilio_code(response)
    if status in RETRYABLE:
        retry_after = response.headers.get("Retry-After")
        raise TwilioUnavailable(
            f"{where} (error {code})", retry_after=float(retry_after) if retry_after and retry_after.isdigit() else None
        )
    if status in (401, 403):
        raise TwilioAuthFailed(f"{where}: credentials refused (error {code})")
    if status == 404:
        raise MediaNotReady(f"{where} (error {code})")
    if status == 400 and dual and code == NO_DUAL_VERSION:
        raise DualUnavailable(where)
    raise PermanentError(f"{where} (error {code})")


def _checked_chunks(response: requests.Response, expected: int | None,
                    deadline: float | None = None) -> Iterator[bytes]:
    """Yield the body; a cut or short body is a transient failure, never a silent truncation.

    The read timeout ends a download that stops sending; `deadline` (seconds) ends one that
    trickles a few bytes at a time forever, which no read timeout would catch. Threads
    workers have no Celery time limit to stop such a task, so the download stops itself.
    """
    received = 0
    give_up = time.monotonic() + deadline if deadline is not None else None
    try:
        for chunk in response.iter_content(CHUNK):
            received += len(chunk)
            if give_up is not None and time.monotonic() > give_up:
                raise TwilioUnavailable(f"media download still running after {deadline:.0f} s "
                                        f"({received} bytes); stopped to try again later")
            yield chunk
    except (requests.RequestException, OSError) as error:
        raise TwilioUnavailable(f"media body cut after {received} bytes: {type(error).__name__}") from None
    if expected is not None and received != expected:
        raise TwilioUnavailable(f"media body has {received} bytes, Content-Length said {expected}")


def _twilio_code(response: requests.Response) -> str:
    try:
        return str(json.loads(response.content[:4096]).get("code", "-"))
    except (ValueError, AttributeError):
        return "-"


def _json(response: requests.Response) -> dict:
    try:
        return response.json()
    except ValueError:
        raise TwilioUnavailable(f"{_path(response.url)}: body is not JSON") from None


def _prepared_url(url: str) -> str:
    """`url` as requests sends it (IDNA host, percent-encoded path)."""
    return requests.Request("GET", url).prepare().url or url


def _redirect_target(url: str, location: str) -> str:
    """The absolute URL a redirect's Location names (checked like any other before use)."""
    try:
        return urljoin(url, location)
    except ValueError:  # e.g. an unclosed IPv6 bracket
        raise ForeignHost(f"redirect to {location[:100]!r} cannot be parsed; no request sent") from None


def _path(url: str) -> str:
    """A URL without query or credentials, safe to log."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "(a URL that does not parse)"
    return f"{parts.scheme}://{parts.hostname}{parts.path}"
