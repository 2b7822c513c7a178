"""The status page as a person sees it: real headless Chromium, real ingest, a real archive."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

from aiohttp.test_utils import TestServer

from recvault.ingest.app import create_app
from recvault.ops.status import WINDOW_DAYS
from tests.fixtures.chromium import chromium_page
from tests.ops.conftest import bearer, ops_settings

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
