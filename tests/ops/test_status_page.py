"""The status page as a person sees it: real headless Chromium, real ingest, a real archive."""

from __future__ import annotations

import asyncio
import json
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from aiohttp.test_utils import TestServer

from recvault.ingest.app import create_app
from recvault.ops.status import WINDOW_DAYS
from tests.fixtures.chromium import LOAD_SECONDS, Page, chromium_page
from tests.ops.conftest import API_TOKEN, bearer, ops_settings

# Every figure the page shows, by its data-figure name.
FIGURES = ("Object.fromEntries([...document.querySelectorAll('[data-figure]')]"
           ".map(e => [e.dataset.figure, e.textContent]))")
BARS = ("Object.fromEntries([...document.querySelectorAll('[data-chart=minutes-per-day] rect')]"
        ".map(e => [e.dataset.label, Number(e.dataset.value)]))")
RECENT = "[...document.querySelectorAll('[data-table=recent] tr[data-sid]')].map(e => e.dataset.sid)"


async def test_the_status_page_shows_what_was_archived(redis_url, tmp_path, s3_store, archived) -> None:
    now = datetime.now(UTC)
    today = now.strftime("%Y-%m-%d")
    # The page covers the recordings of the last WINDOW_DAYS days (the fixture has one from 10 days ago).
    first_day = (now - timedelta(days=WINDOW_DAYS - 1)).strftime("%Y-%m-%d")
    in_window = [d for d in archived.documents.values() if d["media_key"].split("/")[1][5:] >= first_day]
    recent_documents = [d for d in in_window if datetime.fromisoformat(d["archived_at"]) > now - timedelta(hours=24)]
    minutes_today = sum(int(d["duration"]) for d in archived.on(today)) / 60
    cost_today = -sum(Decimal(d["price"]) for d in archived.on(today))
    async with TestServer(create_app(ops_settings(redis_url, tmp_path, s3_store))) as server:
        async with chromium_page(tmp_path / "chromium") as page:
            await page.open(str(server.make_url("/status")), bearer(**{"X-Recvault-User": "Dana Ops"}))
            shot = await page.screenshot(tmp_path / "status.png")
            figures = await page.evaluate(FIGURES)
            bars = await page.evaluate(BARS)
            recent = await page.evaluate(RECENT)
            title = await page.evaluate("document.title")
    assert title == "recvault status"
    assert shot.stat().st_size > 20_000 and shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert figures["archived-24h"] == str(len(recent_documents)) == "5"
    assert figures["minutes-today"] == f"{minutes_today:.1f}"
    assert figures["cost-today"] == f"{cost_today:.4f} USD"
    assert figures["dead-letters"] == "1"
    assert figures["queue-waiting"] == "0" and figures["spool-depth"] == "0"
    assert abs(bars[today[5:]] - minutes_today) < 1e-6
    assert {d["sid"] for d in in_window} | set(archived.absent) | {archived.dead_lettered} <= set(recent)


# What an authenticating proxy (oauth2-proxy) adds to each request it lets through: who signed in
# with it, and the address the browser connected from.
PROXY = {"X-Forwarded-Email": "dana@example.com", "X-Forwarded-For": "203.0.113.7"}


async def navigate(page: Page, action: str) -> str:
    """Run `action`, a script that leaves the page (a click, a form sent), and wait for the next page to
    load; its address."""
    await page.evaluate("window.__leaving = true")
    await page.evaluate(action)
    deadline = time.monotonic() + LOAD_SECONDS
    while time.monotonic() < deadline:
        try:
            if await page.evaluate("window.__leaving === undefined && document.readyState === 'complete'"):
                return str(await page.evaluate("location.href"))
        except AssertionError:  # asked while the old page was going away
            pass
        await asyncio.sleep(0.05)
    raise AssertionError(f"no page loaded after {action}")


async def test_a_person_signs_in_through_the_proxy_plays_a_recording_and_signs_out(redis_url, tmp_path, s3_store,
                                                                                  archived) -> None:
    sid, document = list(archived.documents.items())[3]  # a recording only this test plays
    settings = ops_settings(redis_url, tmp_path, s3_store, identity_header="X-Forwarded-Email",
                            trust_forwarded_headers=True)
    async with TestServer(create_app(settings)) as server:
        async with chromium_page(tmp_path / "chromium") as page:
            # No sign-in yet: the status page sends the browser to the sign-in form, which names the
            # person as the proxy does and asks only for the token.
            await page.open(str(server.make_url("/status")), PROXY)
            assert await page.evaluate("location.pathname") == "/status/login"
            assert await page.evaluate("document.querySelector('[data-identity]').textContent") == "dana@example.com"
            assert await page.evaluate("document.querySelector('input[name=user]')") is None
            await page.screenshot(tmp_path / "sign-in.png")
            sign_in = f"document.querySelector('input[name=token]').value = {json.dumps(API_TOKEN)};"
            status = await navigate(page, sign_in + "document.querySelector('form').submit()")
            assert status == str(server.make_url("/status"))
            assert "signed in as dana@example.com" in await page.evaluate("document.querySelector('header').innerText")
            # Play the recording from its row on the page: the browser is sent to the media itself.
            played = await navigate(page, f"document.querySelector('tr[data-sid={sid}] a[href*=\"/media\"]').click()")
            assert played.startswith(str(s3_store.endpoint_url)) and "X-Amz-Expires=300" in played
            # The recording's history, as the API shows it to the signed-in browser.
            await navigate(page, f"location.href = {json.dumps(str(server.make_url(f'/api/recordings/{sid}')))}")
            history = json.loads(await page.evaluate("document.querySelector('pre').textContent"))
            # Signing out goes back to the sign-in form, and the status page asks for it again.
            await navigate(page, f"location.href = {json.dumps(str(server.make_url('/status')))}")
            signed_out = await navigate(page, "document.querySelector('[data-action=sign-out]').click()")
            assert signed_out == str(server.make_url("/status/login"))
            again = await navigate(page, f"location.href = {json.dumps(str(server.make_url('/status')))}")
            assert again == str(server.make_url("/status/login"))
            cookies = await page.call("Network.getCookies", urls=[str(server.make_url("/"))])
            assert [c for c in cookies["cookies"] if c["name"] == "recvault_ops"] == []
    [accessed] = [entry for entry in history["audit"] if entry["action"] == "media-accessed"]
    assert accessed["user"] == "dana@example.com" and accessed["user_source"] == "proxy"
    assert accessed["remote"] == "203.0.113.7" and accessed["peer"] == "127.0.0.1"
    assert accessed["credential"].startswith("status-login:") and accessed["media_key"] == document["media_key"]
    assert accessed["actor"].startswith("dana@example.com (status-login:")
