"""Recording Status Callbacks as Twilio sends them: realistic parameters, signed, retried like Twilio.

Twilio waits 15 s for an answer and, by default, retries once and only when the
connection fails (refused, reset, connect timeout); a 5xx answer is never retried.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from email.utils import format_datetime
from urllib.parse import urlencode

import aiohttp
from twilio.request_validator import RequestValidator
from yarl import URL

from recvault.simulator.recordings import NO_ERROR, NO_PUBLIC_KEY, OUTCOMES, SILENT, TOO_SHORT, SimRecording

USER_AGENT = "TwilioProxy/1.1"  # what Twilio's webhook requests carry
FORM_TYPE = "application/x-www-form-urlencoded; charset=utf-8"
TIMEOUT_SECONDS = 15.0  # Twilio's default read and total timeout for callbacks
CONNECT_TIMEOUT_SECONDS = 5.0  # Twilio's default connection timeout
# "The connection failed": refused, reset, closed before an answer, or not made in time.
CONNECTION_FAILURES = (aiohttp.ClientConnectorError, aiohttp.ServerDisconnectedError,
                       aiohttp.ClientOSError, aiohttp.ConnectionTimeoutError)


def callback_params(rec: SimRecording, status: str, *, api_base: str,
                    error_code: str = NO_ERROR) -> dict[str, str]:
    """The parameters Twilio sends for `rec` reaching `status`, in Twilio's order."""
    url = f"{api_base.rstrip('/')}/2010-04-01/Accounts/{rec.account_sid}/Recordings/{rec.sid}"
    params = {"AccountSid": rec.account_sid}
    if rec.call_sid:
        params["CallSid"] = rec.call_sid
    if rec.conference_sid:
        params["ConferenceSid"] = rec.conference_sid
    params.update({"RecordingSid": rec.sid, "RecordingUrl": url, "RecordingStatus": status})
    if status == "completed":
        params["RecordingDuration"] = str(rec.duration)
    params["RecordingChannels"] = str(rec.channels)
    if rec.start_time is not None:  # set at creation; None only if a control PATCH cleared it
        params["RecordingStartTime"] = format_datetime(rec.start_time)
    params.update({
        "RecordingSource": rec.source,
        "RecordingTrack": rec.track,
        "ErrorCode": error_code,
    })
    if rec.encrypted and rec.encryption_details and status == "completed":
        params["EncryptionDetails"] = json.dumps(rec.encryption_details, separators=(",", ":"))
    return params


def callback_sequence(rec: SimRecording, outcome: str = "completed", *, api_base: str,
                      in_progress: bool = True) -> list[dict[str, str]]:
    """The callbacks of one recording's life: in-progress, then completed, absent or failed."""
    if outcome not in OUTCOMES:
        raise ValueError(f"outcome must be one of {OUTCOMES}")
    error_code = {"completed": NO_ERROR, "absent": TOO_SHORT if rec.duration < 1 else SILENT,
                  "failed": NO_PUBLIC_KEY}[outcome]
    if outcome != "completed" and rec.error_code:
        error_code = str(rec.error_code)
    steps = [callback_params(rec, "in-progress", api_base=api_base)] if in_progress else []
    return [*steps, callback_params(rec, outcome, api_base=api_base, error_code=error_code)]


@dataclass(frozen=True)
class PreparedCallback:
    """A signed request, ready to send any number of times with no more work."""

    method: str
    url: URL
    body: bytes | None
    headers: dict[str, str]
    recording_sid: str
    status: str


@dataclass(frozen=True)
class CallbackResult:
    """What happened to one callback: HTTP status (None if never answered), retry, timing."""

    recording_sid: str
    recording_status: str
    http_status: int | None
    retried: bool
    elapsed: float
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.http_status is not None and 200 <= self.http_status < 300


class CallbackSender:
    """Sends signed callbacks over one keep-alive ClientSession, `concurrency` at a time."""

    def __init__(self, url: str | None = None, *, auth_token: str, method: str = "POST",
                 concurrency: int = 64, timeout: float = TIMEOUT_SECONDS,
                 connect_timeout: float = CONNECT_TIMEOUT_SECONDS, retry_delay: float = 0.0) -> None:
        if method not in ("POST", "GET"):
            raise ValueError("method must be POST or GET")
        self.url, self.method = url, method
        self._validator = RequestValidator(auth_token)
        self._concurrency = concurrency
        self._timeout = aiohttp.ClientTimeout(total=timeout, sock_connect=connect_timeout)
        self._retry_delay = retry_delay
        self._slots = asyncio.Semaphore(concurrency)
        self._session: aiohttp.ClientSession | None = None

    def __repr__(self) -> str:
        return f"CallbackSender(url={self.url!r}, method={self.method!r})"

    async def __aenter__(self) -> CallbackSender:
        connector = aiohttp.TCPConnector(limit=self._concurrency, limit_per_host=self._concurrency)
        self._session = aiohttp.ClientSession(connector=connector, timeout=self._timeout,
                                              auto_decompress=False)
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    def prepare(self, params: dict[str, str], *, url: str | None = None,
                method: str | None = None) -> PreparedCallback:
        """Encode and sign: form body for POST, query string for GET (signed as part of the URL)."""
        target, verb = url or self.url, method or self.method
        if not target:
            raise ValueError("no callback URL given")
        encoded = urlencode(params)
        body: bytes | None = encoded.encode()
        if verb == "GET":
            target, body = f"{target}{'&' if '?' in target else '?'}{encoded}", None
            signature = self._validator.compute_signature(target, {})
        else:
            signature = self._validator.compute_signature(target, params)
        headers = {
            "X-Twilio-Signature": signature,
            "I-Twilio-Idempotency-Token": secrets.token_hex(16),
            "User-Agent": USER_AGENT,
        }
        if body is not None:
            headers["Content-Type"] = FORM_TYPE
        return PreparedCallback(verb, URL(target, encoded=True), body, headers,
                                params.get("RecordingSid", ""), params.get("RecordingStatus", ""))

    async def send_prepared(self, prepared: PreparedCallback) -> CallbackResult:
        """Send once; retry once (same idempotency token) only if the connection failed."""
        if self._session is None:
            raise RuntimeError("use `async with CallbackSender(...)` before sending")
        started = time.perf_counter()
        status, error, retried = None, None, False
        for attempt in (1, 2):
            try:
                async with self._session.request(prepared.method, prepared.url, data=prepared.body,
                                                 headers=prepared.headers) as response:
                    await response.read()
                    status, error = response.status, None
                break
            except CONNECTION_FAILURES as failure:
                error = f"connection failed: {type(failure).__name__}"
                if attempt == 2:
                    break
                retried = True
                if self._retry_delay:
                    await asyncio.sleep(self._retry_delay)
            except TimeoutError:
                error = "timed out"
                break
        return CallbackResult(prepared.recording_sid, prepared.status, status, retried,
                              time.perf_counter() - started, error)

    async def send(self, params: dict[str, str], **options: str) -> CallbackResult:
        return await self.send_prepared(self.prepare(params, **options))

    async def send_many(self, prepared: Iterable[PreparedCallback], *,
                        rate: float | None = None) -> list[CallbackResult]:
        """Send all, at most `concurrency` in flight and at most `rate` started per second."""
        loop = asyncio.get_running_loop()
        begin, tasks = loop.time(), []
        for index, item in enumerate(prepared):
            if rate:
                delay = begin + index / rate - loop.time()
                if delay > 0.001:
                    await asyncio.sleep(delay)
            await self._slots.acquire()
            tasks.append(asyncio.create_task(self._send_and_release(item)))
        return list(await asyncio.gather(*tasks))

    async def _send_and_release(self, prepared: PreparedCallback) -> CallbackResult:
        try:
            return await self.send_prepared(prepared)
        finally:
            self._slots.release()


def summarize(results: Sequence[CallbackResult]) -> dict:
    """Counts by HTTP status, retries, errors and latency percentiles (milliseconds)."""
    latencies = sorted(r.elapsed * 1000 for r in results)

    def pct(q: float) -> float:
        return round(latencies[min(len(latencies) - 1, int(q * len(latencies)))], 2) if latencies else 0.0

    statuses: dict[str, int] = {}
    for r in results:
        key = str(r.http_status) if r.http_status is not None else "no-answer"
        statuses[key] = statuses.get(key, 0) + 1
    return {"sent": len(results), "ok": sum(r.ok for r in results), "statuses": statuses,
            "retried": sum(r.retried for r in results),
            "errors": sum(r.error is not None for r in results),
            "p50_ms": pct(0.50), "p95_ms": pct(0.95), "p99_ms": pct(0.99)}
