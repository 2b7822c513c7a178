"""Signing in to the operations routes: the token's strength, backing off after wrong tokens, refusals
logged and counted, the Secure cookie, signing out, browsers sent to the sign-in form, the person an
authenticating proxy names, and the operations routes on a port of their own — on a real ingest app (and
real `recvault serve` processes) over the archive the fixtures made in SeaweedFS."""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import ssl
import subprocess
import sys
import time
from collections import Counter
from html import escape
from unittest import mock
from urllib.parse import quote

import aiohttp
import pytest
import requests
from aiohttp.test_utils import TestClient, TestServer, make_mocked_request
from multidict import CIMultiDict

from recvault.audit.append import read_chain
from recvault.commands.up import _embedded_secret
from recvault.errors import ConfigurationError
from recvault.ingest.app import create_app
from recvault.ingest.context import INGEST
from recvault.ingest.ops.auth import LOGIN_SECONDS, Guard, make_cookie
from recvault.ingest.ops.throttle import FREE_FAILURES, MAX_DELAY_SECONDS, Throttle
from recvault.launch.process import Component
from recvault.launch.services import free_port
from recvault.logs import JsonFormatter
from recvault.settings import Settings, load_settings
from tests.ops.conftest import API_TOKEN, bearer, browser, ops_settings
from tests.ops.test_api import OPERATIONS_ROUTES

# Not the token, each a plausible guess (long enough to be compared).
WRONG = "Wrong-token-Kx8Vb3Nm6Qz1Rt4Yp7Lc"
# What an authenticating proxy (oauth2-proxy) adds to each request it lets through.
PROXY = {"X-Forwarded-Email": "dana@example.com", "X-Forwarded-For": "203.0.113.7"}


# --- the token's strength ------------------------------------------------------------------------

WEAK_TOKENS = [
    "aaaaaaaaaaaaaaaa",                      # 16 characters: what used to pass
    "a" * 40,                                # long, one character
    "0123456789abcdef" * 2,                  # 32 hex, a repeated block
    "Kq2" * 10,                              # a repeated block in a wider alphabet
    "3f9a1c7e5b2d8f0a6c4e9b1d7a3f5c",        # 30 hex: 120 bits
    "q7Vd2kXp9LmZr4TfB8wN1",                 # 21 base64url: 126 bits
    "27182818284590452353602874713526624",   # 35 digits: 116 bits
    "correct horse battery staple",          # spaces
]
STRONG_TOKENS = [
    "8f14e45fceea167a5a36dedd4bea2543",          # 32 hex (`openssl rand -hex 16`)
    "q7Vd2kXp9LmZr4TfB8wN1c",                    # 22 base64url (`secrets.token_urlsafe(16)`)
    "271828182845904523536028747135266249775",   # 39 digits: 129 bits
    API_TOKEN,
]


@pytest.mark.parametrize("token", WEAK_TOKENS)
def test_a_token_under_128_bits_or_not_random_is_refused_in_one_line_naming_the_setting(token: str) -> None:
    with pytest.raises(ConfigurationError) as caught:
        load_settings(api_token=token)
    message = str(caught.value)
    assert message.startswith("RECVAULT_API_TOKEN: ") and "\n" not in message
    assert token not in message


@pytest.mark.parametrize("token", STRONG_TOKENS)
def test_random_tokens_of_128_bits_or_more_are_accepted(token: str) -> None:
    assert Settings(api_token=token).api_token.get_secret_value() == token


def test_a_character_counts_for_the_bits_its_alphabet_gives() -> None:
    with pytest.raises(ConfigurationError, match="38 digits, about 126 bits"):
        load_settings(api_token=STRONG_TOKENS[2][:-1])
    with pytest.raises(ConfigurationError, match="31 hex characters, about 124 bits"):
        load_settings(api_token=STRONG_TOKENS[0][:-1])
    with pytest.raises(ConfigurationError, match="21 characters, about 126 bits"):
        load_settings(api_token=STRONG_TOKENS[1][:-1])


def test_the_token_recvault_up_makes_is_strong_enough(tmp_path) -> None:
    for n in range(20):
        token = _embedded_secret(tmp_path / f"token-{n}")
        assert Settings(api_token=token).api_token.get_secret_value() == token


def test_serve_refuses_a_weak_token_at_start(tmp_path) -> None:
    env = {**os.environ, "RECVAULT_TWILIO_AUTH_TOKENS": "ingest-token-0123456789abcdef",
           "RECVAULT_API_TOKEN": "aaaaaaaaaaaaaaaa", "RECVAULT_DATA_DIR": str(tmp_path)}
    result = subprocess.run([sys.executable, "-m", "recvault.cli", "serve", "--port", str(free_port())], env=env,
                            capture_output=True, text=True, timeout=30, cwd=tmp_path)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    [line] = [line for line in result.stderr.splitlines() if "RECVAULT_API_TOKEN" in line]
    assert "128 bits" in line and "aaaaaaaaaaaaaaaa" not in result.stderr


# --- backing off -----------------------------------------------------------------------------------

def test_a_few_failures_are_free_then_each_try_waits_twice_as_long_up_to_a_bound() -> None:
    now = [1000.0]
    throttle = Throttle(clock=lambda: now[0])
    address = "203.0.113.5"
    for _ in range(FREE_FAILURES - 1):
        assert throttle.failed(address) == 0 and throttle.wait(address) == 0
    delays = []
    for _ in range(16):
        delays.append(throttle.failed(address))
        assert throttle.wait(address) == delays[-1]
        now[0] += delays[-1]  # waits it out, then fails again
        assert throttle.wait(address) == 0
    assert delays[:5] == [1, 2, 4, 8, 16] and delays[-1] == MAX_DELAY_SECONDS == max(delays)
    assert throttle.wait("203.0.113.6") == 0  # another address is not held back
    throttle.succeeded(address)  # a right token forgets the failures
    assert throttle.wait(address) == 0 and throttle.failed(address) == 0


def test_failures_are_forgotten_an_hour_after_the_last_and_memory_is_bounded() -> None:
    now = [0.0]
    throttle = Throttle(clock=lambda: now[0], max_addresses=100)
    for _ in range(FREE_FAILURES + 3):
        throttle.failed("198.51.100.1")
    now[0] += 3599
    assert throttle.wait("198.51.100.1") == 0 and throttle.failed("198.51.100.1") > 0  # still counted
    now[0] += 3600
    assert throttle.wait("198.51.100.1") == 0 and throttle.failed("198.51.100.1") == 0  # afresh
    for n in range(1000):
        throttle.failed(f"10.{n // 256}.{n % 256}.1")
    assert len(throttle) == 100  # the least recently failed are forgotten first
    assert throttle.failed("10.3.231.1") == 0 and throttle.failed("10.0.0.1") == 0


def test_an_ipv6_client_is_counted_by_its_64_block() -> None:
    throttle = Throttle(clock=lambda: 0.0)
    for n in range(FREE_FAILURES):
        throttle.failed(f"2001:db8:1:2::{n + 1}")
    assert throttle.wait("2001:db8:1:2:ffff::9") == 1
    assert throttle.wait("2001:db8:1:3::1") == 0
    for _ in range(FREE_FAILURES):
        throttle.failed("::ffff:192.0.2.9")
    assert throttle.wait("192.0.2.9") == 1


async def test_wrong_tokens_make_their_address_back_off_with_429_and_retry_after(redis_url, tmp_path, s3_store,
                                                                                archived) -> None:
    settings = ops_settings(redis_url, tmp_path, s3_store, trust_forwarded_headers=True)
    async with TestClient(TestServer(create_app(settings))) as client:
        now = [0.0]
        client.app[INGEST].ops.guard.throttle.clock = lambda: now[0]
        attacker = {"X-Forwarded-For": "203.0.113.66"}

        async def status(token: str, **headers: str) -> aiohttp.ClientResponse:
            return await client.get("/api/openapi.json", headers={**bearer(token), **attacker, **headers})

        started = time.monotonic()
        answers = await asyncio.gather(*(status(f"{WRONG}-{n:03d}") for n in range(300)))
        assert time.monotonic() - started < 30
        assert Counter(answer.status for answer in answers) == {401: FREE_FAILURES, 429: 300 - FREE_FAILURES}
        throttled = next(answer for answer in answers if answer.status == 429)
        assert throttled.headers["Retry-After"] == "1" and "try again in 1 s" in (await throttled.json())["error"]
        # While it waits, even the right token is not compared; other addresses are not held back.
        assert (await status(API_TOKEN)).status == 429
        assert (await status(API_TOKEN, **{"X-Forwarded-For": "203.0.113.67"})).status == 200
        # The sign-in form is held back the same way, and says so to a person.
        form = await client.post("/status/login", data={"token": API_TOKEN}, headers={**attacker, **browser()},
                                 allow_redirects=False)
        assert form.status == 429 and form.headers["Retry-After"] == "1" and "try again" in await form.text()
        # Waited out: one more try; failing it doubles the wait.
        now[0] += 1
        assert (await status(WRONG)).status == 401
        again = await status(API_TOKEN)
        assert again.status == 429 and again.headers["Retry-After"] == "2"
        now[0] += 2
        assert (await status(API_TOKEN)).status == 200  # and the failures are forgotten
        assert (await status(WRONG)).status == 401 and (await status(API_TOKEN)).status == 200


# --- refusals logged and counted -----------------------------------------------------------------

async def test_every_refusal_is_logged_without_what_was_sent_and_counted_by_reason(ops_client, caplog) -> None:
    caplog.set_level(logging.INFO, logger="recvault.ops")
    expired = make_cookie(API_TOKEN, "Dana", now=time.time() - LOGIN_SECONDS - 5)
    forged = make_cookie(WRONG, "Dana", now=time.time())
    sent = [
        ("GET", "/api/openapi.json", bearer(WRONG), "wrong_token"),
        ("GET", "/api/recordings", {}, "missing"),
        ("GET", "/status", {"Authorization": f"Basic {WRONG}"}, "malformed"),
        ("GET", "/status", {"Cookie": f"recvault_ops={forged}"}, "bad_cookie"),
        ("GET", "/status", {"Cookie": f"recvault_ops={expired}"}, "expired"),
        ("GET", "/status", browser(), "missing"),  # a browser is sent to sign in: refused all the same
    ]
    for method, path, headers, _ in sent:
        response = await ops_client.request(method, path, headers=headers, allow_redirects=False)
        assert response.status in (401, 303)
    assert (await ops_client.post("/status/login", data={"token": WRONG, "user": "Sam"})).status == 401
    refusals = [record for record in caplog.records if record.getMessage() == "operator request refused"]
    assert [record.reason for record in refusals] == [reason for *_, reason in sent] + ["wrong_token"]
    assert {(record.status, record.remote) for record in refusals} == {(401, "127.0.0.1")}
    assert {record.levelname for record in refusals if record.reason == "missing"} == {"INFO"}
    assert {record.levelname for record in refusals if record.reason == "wrong_token"} == {"WARNING"}
    logged = "\n".join(JsonFormatter().format(record) for record in caplog.records)
    assert WRONG not in logged and API_TOKEN not in logged and forged not in logged and expired not in logged
    metrics = await (await ops_client.get("/metrics")).text()
    for reason, count in {"wrong_token": 2, "missing": 2, "malformed": 1, "bad_cookie": 1, "expired": 1}.items():
        assert f'recvault_ops_auth_failures_total{{reason="{reason}"}} {count}.0' in metrics, reason
    assert "recvault_ops_auth_throttled_total 0.0" in metrics


# --- the cookie: Secure over TLS, signing out -------------------------------------------------

@pytest.mark.parametrize(("trusted", "headers", "secure"), [
    (True, {"X-Forwarded-Proto": "https"}, True),
    (True, {"Forwarded": "for=203.0.113.5;proto=https"}, True),
    (True, {"X-Forwarded-Proto": "http"}, False),
    (True, {}, False),
    (False, {"X-Forwarded-Proto": "https"}, False),  # anyone can send the header: only a trusted proxy's counts
])
async def test_the_login_cookie_is_secure_when_a_trusted_proxy_says_the_sign_in_came_over_tls(
        redis_url, tmp_path, s3_store, archived, trusted, headers, secure) -> None:
    settings = ops_settings(redis_url, tmp_path, s3_store, trust_forwarded_headers=trusted)
    async with TestClient(TestServer(create_app(settings))) as client:
        signed_in = await client.post("/status/login", data={"token": API_TOKEN}, headers=headers,
                                      allow_redirects=False)
        assert signed_in.status == 303
        assert ("Secure" in signed_in.headers["Set-Cookie"]) is secure
        signed_out = await client.post("/status/logout", headers=headers, allow_redirects=False)
        assert ("Secure" in signed_out.headers["Set-Cookie"]) is secure


async def test_the_login_cookie_is_secure_when_the_sign_in_came_over_tls_directly(redis_url, tmp_path, s3_store,
                                                                                 archived) -> None:
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=127.0.0.1",
                    "-keyout", str(tmp_path / "key.pem"), "-out", str(tmp_path / "cert.pem")],
                   check=True, capture_output=True, timeout=60)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(tmp_path / "cert.pem", tmp_path / "key.pem")
    server = TestServer(create_app(ops_settings(redis_url, tmp_path, s3_store)))
    await server.start_server(ssl=context)
    try:
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=False)) as session:
            async with session.post(server.make_url("/status/login"), data={"token": API_TOKEN},
                                    allow_redirects=False) as signed_in:
                assert server.make_url("/").scheme == "https" and signed_in.status == 303
                assert "Secure" in signed_in.headers["Set-Cookie"]
    finally:
        await server.close()


async def test_signing_out_clears_the_cookie_and_goes_back_to_the_sign_in_form(ops_client) -> None:
    await ops_client.post("/status/login", data={"token": API_TOKEN, "user": "Sam Ops"})
    page = await ops_client.get("/status", headers=browser())
    assert page.status == 200 and 'action="/status/logout"' in await page.text()
    signed_out = await ops_client.post("/status/logout", allow_redirects=False)
    assert signed_out.status == 303 and signed_out.headers["Location"] == "/status/login"
    cleared = signed_out.headers["Set-Cookie"]
    assert cleared.startswith('recvault_ops="";') and "Max-Age=0" in cleared and "SameSite=Strict" in cleared
    after = await ops_client.get("/status", headers=browser(), allow_redirects=False)
    assert after.status == 303 and after.headers["Location"] == "/status/login"
    assert (await ops_client.get("/status")).status == 401
    assert (await ops_client.get("/status/logout")).status == 405  # a link cannot sign anyone out


# --- browsers without a sign-in ---------------------------------------------------------------

async def test_a_browser_without_a_sign_in_is_sent_to_the_form_and_back_while_scripts_get_401(ops_client,
                                                                                             archived) -> None:
    page = await ops_client.get("/status", headers=browser(), allow_redirects=False)
    assert page.status == 303 and page.headers["Location"] == "/status/login"
    sid, document = next(iter(archived.documents.items()))
    day = document["media_key"].split("/")[1][5:]
    recording = f"/api/recordings/{sid}?date={day}"
    sent = await ops_client.get(recording, headers=browser(), allow_redirects=False)
    assert sent.status == 303 and sent.headers["Location"] == f"/status/login?next={quote(recording, safe='/')}"
    form = await ops_client.get(sent.headers["Location"])
    assert f'name="next" value="{escape(recording)}"' in await form.text()
    signed_in = await ops_client.post("/status/login", data={"token": API_TOKEN, "next": recording},
                                      allow_redirects=False)
    assert signed_in.status == 303 and signed_in.headers["Location"] == recording
    ops_client.session.cookie_jar.clear()
    for elsewhere in ("//evil.example/status", "https://evil.example/status", "/\\evil.example", "/twilio/x"):
        answer = await ops_client.post("/status/login", data={"token": API_TOKEN, "next": elsewhere},
                                       allow_redirects=False)
        assert answer.headers["Location"] == "/status", elsewhere
    ops_client.session.cookie_jar.clear()
    # Scripts, and a browser sending a wrong token itself, are answered 401 with the reason.
    for headers in ({}, {"Accept": "application/json"}, browser(**bearer(WRONG))):
        answer = await ops_client.get("/status", headers=headers, allow_redirects=False)
        assert answer.status == 401 and (await answer.json())["error"], headers
    # A person whose wrong token the form refused sees the form again, with the reason.
    wrong = await ops_client.post("/status/login", data={"token": WRONG}, headers=browser())
    text = await wrong.text()
    assert wrong.status == 401 and "not RECVAULT_API_TOKEN" in text and 'name="token"' in text


# --- the person an authenticating proxy names --------------------------------------------------

def _proxied(redis_url, tmp_path, s3_store, **overrides) -> Settings:
    return ops_settings(redis_url, tmp_path, s3_store, identity_header="X-Forwarded-Email",
                        trust_forwarded_headers=True, **overrides)


def _media_accessed(s3_store, sid: str) -> list[dict]:
    return [{**entry.details, "actor": entry.actor} for entry in read_chain(s3_store, "", sid)[0]
            if entry.action == "media-accessed"]


async def test_the_proxy_names_who_signed_in_and_who_played_a_recording(redis_url, tmp_path, s3_store,
                                                                       archived) -> None:
    sid = list(archived.documents)[4]  # a recording only this test plays
    async with TestClient(TestServer(create_app(_proxied(redis_url, tmp_path, s3_store)))) as client:
        form = await (await client.get("/status/login", headers=PROXY)).text()
        assert "dana@example.com" in form and 'name="user"' not in form  # no name to type: the proxy's
        # Not through the proxy: no sign-in, however right the token.
        direct = await client.post("/status/login", data={"token": API_TOKEN, "user": "mallory"}, allow_redirects=False)
        assert direct.status == 401 and "X-Forwarded-Email" in (await direct.json())["error"]
        signed_in = await client.post("/status/login", data={"token": API_TOKEN, "user": "mallory"}, headers=PROXY,
                                      allow_redirects=False)
        assert signed_in.status == 303
        page = await (await client.get("/status", headers=PROXY)).text()
        assert "signed in as dana@example.com" in page and "mallory" not in page
        # The sign-in is Dana's: someone else behind the proxy, or no proxy at all, must sign in again.
        other = await client.get("/status", headers={**PROXY, "X-Forwarded-Email": "eve@example.com"})
        assert other.status == 401 and "someone else" in (await other.json())["error"]
        assert (await client.get("/status", headers=browser(), allow_redirects=False)).status == 303
        assert (await client.get("/status")).status == 401
        played = await client.get(f"/api/recordings/{sid}/media", headers=PROXY, allow_redirects=False)
        assert played.status == 302
        # A script's token, through the proxy: the proxy names the person, not X-Recvault-User.
        client.session.cookie_jar.clear()
        script = await client.get(f"/api/recordings/{sid}/media", allow_redirects=False, headers={
            **bearer(**{"X-Recvault-User": "mallory"}), **PROXY, "X-Forwarded-For": "198.51.100.20, 203.0.113.8"})
        assert script.status == 302
        # Without the proxy's header a script's name is its own word, and recorded as such.
        declared = await client.get(f"/api/recordings/{sid}/media", allow_redirects=False,
                                    headers=bearer(**{"X-Recvault-User": "Sam (script)"}))
        assert declared.status == 302
        # Two names, or one the proxy could not have sent, are refused.
        for bad in (CIMultiDict([*bearer().items(), ("X-Forwarded-Email", "dana@example.com"),
                                 ("X-Forwarded-Email", "eve@example.com")]),
                    CIMultiDict([*bearer().items(), ("X-Forwarded-Email", "d" * 300 + "@example.com")])):
            refused = await client.get("/api/openapi.json", headers=bad)
            assert refused.status == 401 and "X-Forwarded-Email" in (await refused.json())["error"], bad
        body = await (await client.get(f"/api/recordings/{sid}", headers={**bearer(), **PROXY})).json()
    accessed = _media_accessed(s3_store, sid)
    assert [(a["user"], a["user_source"], a["remote"], a["peer"]) for a in accessed] == [
        ("dana@example.com", "proxy", "203.0.113.7", "127.0.0.1"),
        ("dana@example.com", "proxy", "203.0.113.8", "127.0.0.1"),
        ("Sam (script)", "declared", "127.0.0.1", None),
    ]
    assert [a["credential"].split(":")[0] for a in accessed] == ["status-login", "api-token", "api-token"]
    assert accessed[0]["actor"].startswith("dana@example.com (status-login:")
    assert [a["user"] for a in body["audit"] if a["action"] == "media-accessed"] == [a["user"] for a in accessed]


async def test_without_the_setting_the_proxy_headers_name_no_one(redis_url, tmp_path, s3_store, archived) -> None:
    sid = list(archived.documents)[5]  # a recording only this test plays
    settings = ops_settings(redis_url, tmp_path, s3_store)  # RECVAULT_IDENTITY_HEADER and forwarded trust off
    async with TestClient(TestServer(create_app(settings))) as client:
        played = await client.get(f"/api/recordings/{sid}/media", allow_redirects=False,
                                  headers={**bearer(**{"X-Recvault-User": "Sam"}), **PROXY})
        assert played.status == 302
        form = await (await client.get("/status/login", headers=PROXY)).text()
        assert 'name="user"' in form and "dana@example.com" not in form
    [accessed] = _media_accessed(s3_store, sid)
    assert (accessed["user"], accessed["user_source"], accessed["remote"], accessed["peer"]) == \
        ("Sam", "declared", "127.0.0.1", None)


def _request(headers: dict[str, str] | list[tuple[str, str]], peer: str = "10.0.0.2") -> aiohttp.web.Request:
    transport = mock.Mock()
    transport.get_extra_info.side_effect = lambda name, default=None: {"peername": (peer, 50000)}.get(name, default)
    pairs = list(headers.items()) if isinstance(headers, dict) else headers
    return make_mocked_request("GET", "/status", headers=CIMultiDict(pairs), transport=transport)


@pytest.mark.parametrize(("trusted", "hops", "forwarded_for", "address"), [
    (False, 1, "198.51.100.1", "10.0.0.2"),                  # not trusted: the connection's peer
    (True, 1, "198.51.100.1, 203.0.113.9", "203.0.113.9"),    # the entry the proxy in front added
    (True, 2, "198.51.100.1, 203.0.113.9", "198.51.100.1"),   # two proxies: the one before the last
    (True, 3, "198.51.100.1, 203.0.113.9", "10.0.0.2"),       # fewer entries than proxies: not believed
    (True, 1, "198.51.100.1, unknown", "10.0.0.2"),           # not an address
    (True, 1, "203.0.113.9:4711", "203.0.113.9"),
    (True, 1, "[2001:db8::7]:443", "2001:db8::7"),
    (True, 1, "2001:db8::7", "2001:db8::7"),
    (True, 1, None, "10.0.0.2"),
])
def test_the_client_address_is_the_entry_as_many_proxies_from_the_right(trusted, hops, forwarded_for,
                                                                       address) -> None:
    guard = Guard(Settings(api_token=API_TOKEN, trust_forwarded_headers=trusted, forwarded_for_hops=hops))
    client = guard.client(_request({"X-Forwarded-For": forwarded_for} if forwarded_for else {}))
    assert client.address == address
    assert client.peer == (None if address == "10.0.0.2" else "10.0.0.2")


def test_several_forwarded_for_headers_read_as_one_list() -> None:
    guard = Guard(Settings(api_token=API_TOKEN, trust_forwarded_headers=True, forwarded_for_hops=2))
    request = _request([("X-Forwarded-For", "198.51.100.1"), ("X-Forwarded-For", "203.0.113.9")])
    assert guard.client(request).address == "198.51.100.1"


@pytest.mark.parametrize("name", ["Authorization", "cookie", "X-Forwarded-For", "X-Recvault-User", "X Email", "é"])
def test_an_identity_header_that_cannot_name_a_person_is_refused(name: str) -> None:
    with pytest.raises(ConfigurationError) as caught:
        load_settings(identity_header=name)
    assert str(caught.value).startswith("RECVAULT_IDENTITY_HEADER: ")


# --- the operations routes on a port of their own ------------------------------------------------

async def test_with_an_ops_port_the_operator_routes_are_served_only_there(redis_url, tmp_path, s3_store,
                                                                         archived) -> None:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen()
    port = sock.getsockname()[1]
    settings = ops_settings(redis_url, tmp_path, s3_store, ops_port=port)
    async with TestClient(TestServer(create_app(settings, ops_socket=sock))) as callbacks, \
            aiohttp.ClientSession(f"http://127.0.0.1:{port}") as ops:
        nowhere = await (await callbacks.get("/no-such-route")).json()
        for path in OPERATIONS_ROUTES:
            answer = await callbacks.get(path, headers=bearer())
            assert answer.status == 404 and await answer.json() == nowhere, path
        for path in ("/status/login", "/status/logout"):
            assert (await callbacks.post(path, data={"token": API_TOKEN})).status == 404
        for path in ("/healthz", "/readyz", "/metrics"):
            assert (await callbacks.get(path)).status == 200, path
            async with ops.get(path) as answer:
                assert answer.status == 404, path
        async with ops.post("/twilio/recording-status", data={"RecordingSid": "RE" + "0" * 32}) as answer:
            assert answer.status == 404
        async with ops.get("/api/recordings?limit=2", headers=bearer()) as answer:
            assert answer.status == 200 and len((await answer.json())["items"]) == 2
        async with ops.get("/status", headers=browser(), allow_redirects=False) as answer:
            assert answer.status == 303 and answer.headers["Location"] == "/status/login"
        async with ops.get("/api/openapi.json") as answer:
            assert answer.status == 401
        # The refusals on the operator port are counted where Prometheus reads ingest's metrics.
        metrics = await (await callbacks.get("/metrics")).text()
        assert 'recvault_ops_auth_failures_total{reason="missing"} 2.0' in metrics


def _serve(tmp_path, redis_url: str, port: int, ops_port: int, *extra: str) -> Component:
    env = {**os.environ, "RECVAULT_TWILIO_AUTH_TOKENS": "ingest-token-0123456789abcdef",
           "RECVAULT_BROKER_URL": redis_url, "RECVAULT_DATA_DIR": str(tmp_path), "RECVAULT_API_TOKEN": API_TOKEN,
           "RECVAULT_OPS_PORT": str(ops_port), "RECVAULT_OPS_HOST": "127.0.0.1"}
    return Component("ingest", ["serve", "--port", str(port), *extra], env, log_path=tmp_path / "ingest.log",
                     ready_url=f"http://127.0.0.1:{port}/healthz")


@pytest.mark.parametrize("processes", [1, 2])
def test_serve_with_an_ops_port_splits_the_routes_between_its_two_ports(redis_url, tmp_path, processes) -> None:
    port, ops_port = free_port(), free_port()
    base, ops = f"http://127.0.0.1:{port}", f"http://127.0.0.1:{ops_port}"
    with _serve(tmp_path, redis_url, port, ops_port, "--processes", str(processes)):
        for _ in range(4):  # any of the processes may take a connection
            assert requests.get(f"{ops}/api/openapi.json", headers=bearer(), timeout=10).status_code == 200
            assert requests.get(f"{base}/api/openapi.json", headers=bearer(), timeout=10).status_code == 404
            assert requests.get(f"{ops}/healthz", timeout=10).status_code == 404
            assert requests.get(f"{base}/metrics", timeout=10).status_code == 200
        signed_in = requests.post(f"{ops}/status/login", data={"token": API_TOKEN}, allow_redirects=False, timeout=10)
        assert signed_in.status_code == 303 and signed_in.cookies.get("recvault_ops")
    log = (tmp_path / "ingest.log").read_text()
    assert f"operations routes listening on http://127.0.0.1:{ops_port}/status only" in log
    assert API_TOKEN not in log


def test_serve_refuses_an_ops_port_that_is_the_callback_port(redis_url, tmp_path) -> None:
    port = free_port()
    server = _serve(tmp_path, redis_url, port, port)
    result = subprocess.run(server.command(), env=server.env, capture_output=True, text=True, timeout=30,
                            cwd=tmp_path)
    assert result.returncode == 1 and "RECVAULT_OPS_PORT" in result.stderr and "Traceback" not in result.stderr
