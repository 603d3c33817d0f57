"""The dashboard in headless Chromium against a running stack."""

from __future__ import annotations

import asyncio
import re
import time
from datetime import UTC, datetime

import orjson
import pytest
from playwright.async_api import Page, expect

from browser.conftest import PHONE
from browser.stack import ARTIFACTS, dashboard_running, logged_in
from tradebot.common import bus, keys
from tradebot.common.keys import errors_key, heartbeat_key
from tradebot.common.models import PriceTick

pytestmark = pytest.mark.browser
WAIT_MS = 30_000
SOME_BARS = re.compile(r"^[1-9][0-9]*$")
COLOURS = {
    "healthy": "rgb(46, 160, 67)",
    "degraded": "rgb(210, 153, 34)",
    "unhealthy": "rgb(218, 54, 51)",
    "dead": "rgb(0, 0, 0)",
    "error": "rgb(240, 136, 62)",
}


async def open_dashboard(browser, url: str) -> Page:
    page = await browser.new_page()
    await page.goto(logged_in(url))
    await expect(page.locator("#ws-state")).to_have_attribute("data-state", "open", timeout=WAIT_MS)
    return page


async def test_prices_change_live_and_the_chart_renders(stack, browser):
    page = await open_dashboard(browser, stack.url)
    price = page.locator('#prices tr[data-symbol="AAPL"] td.price')
    await expect(price).not_to_be_empty(timeout=WAIT_MS)
    first = await price.text_content()
    await expect(price).not_to_have_text(first, timeout=WAIT_MS)  # a live tick moved it
    await expect(page.locator("#prices tbody tr")).to_have_count(6)
    await expect(page.locator("#chart")).to_have_attribute("data-bars", SOME_BARS, timeout=WAIT_MS)
    assert await page.locator("#chart canvas").count() > 0
    await expect(page.locator("#signals li").first).to_be_visible(timeout=WAIT_MS)
    await expect(page.locator("#trades li").first).to_be_visible(timeout=WAIT_MS)
    await expect(page.locator("#account dd").first).to_contain_text("$")
    await expect(page.locator("#gainers li, #losers li").first).to_be_visible(timeout=WAIT_MS)
    await page.locator('#prices tr[data-symbol="TSLA"]').click()
    await expect(page.locator("#chart-symbol")).to_have_text("TSLA · 1m")
    await page.locator('#intervals button[data-interval="5m"]').click()
    await expect(page.locator("#chart-symbol")).to_have_text("TSLA · 5m")
    await expect(page.locator("#chart-message")).to_contain_text("bars from the API", timeout=WAIT_MS)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    await page.wait_for_timeout(500)  # let the last frame paint; the screenshot is for people, not asserted
    await page.screenshot(path=str(ARTIFACTS / "dashboard.png"), full_page=True)


async def test_health_panel_colours_follow_heartbeats_and_errors(stack, browser, redis):
    async def beat(service: str, age: float) -> None:
        payload = {"service": service, "status": "running", "timestamp": time.time() - age, "counters": {}}
        await redis.set(heartbeat_key(service), orjson.dumps(payload))

    await beat("backfill", 45)  # degraded
    await beat("alpaca_market_data", 90)  # unhealthy
    await beat("polygon_market_data", 400)  # dead
    await redis.incrby(errors_key("storage"), 2)  # error
    page = await open_dashboard(browser, stack.url)
    expected = {
        "market_data": "healthy", "backfill": "degraded", "alpaca_market_data": "unhealthy",
        "polygon_market_data": "dead", "storage": "error",
    }  # fmt: skip
    for service, state in expected.items():
        card = page.locator(f'.service[data-service="{service}"]')
        await expect(card).to_have_attribute("data-state", state, timeout=WAIT_MS)
        # The panel re-renders as heartbeats arrive: a retrying check, never a one-off read.
        await expect(card).to_have_css("background-color", COLOURS[state], timeout=WAIT_MS)
    active = page.locator('.service[data-service="market_data"]')
    await expect(active.locator(".name")).to_have_text("market dataactive")
    await expect(page.locator('.service[data-service="polygon_market_data"] .name')).to_have_text(
        "polygon market data"
    )
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    await page.locator("#health-panel").screenshot(path=str(ARTIFACTS / "health-panel.png"))

    await page.locator('.service[data-service="storage"] button.reset').click()
    storage = page.locator('.service[data-service="storage"]')
    await expect(storage).to_have_attribute("data-state", "healthy", timeout=WAIT_MS)
    await expect(storage).to_have_css("background-color", COLOURS["healthy"], timeout=WAIT_MS)
    assert await redis.get(errors_key("storage")) is None


async def test_the_page_shows_a_lost_connection_and_reconnects(stack, browser):
    async with dashboard_running(stack.settings, port=0) as url:
        page = await open_dashboard(browser, url)
        port = int(url.rsplit(":", 1)[1])
    state = page.locator("#ws-state")
    await expect(state).to_have_attribute("data-state", "closed", timeout=WAIT_MS)
    async with dashboard_running(stack.settings, port=port):
        await expect(state).to_have_attribute("data-state", "open", timeout=WAIT_MS)
        price = page.locator('#prices tr[data-symbol="AAPL"] td.price')
        first = await price.text_content()
        await expect(price).not_to_have_text(first or "", timeout=WAIT_MS)


async def test_an_error_card_says_what_failed(stack, browser, redis):
    """The reason of a service's latest error (here a dead letter the real strategy and storage
    services set aside) and a provider's status message are on its card, not just a count."""
    await redis.xadd(keys.TICKS, {b"v": b"1", b"k": b"tick", b"d": b"{not json"})
    provider = {
        "service": "alpaca_market_data", "status": "error", "timestamp": time.time(), "counters": {},
        "message": "Alpaca rejected ALPACA_KEY/ALPACA_SECRET: 'auth failed' (402)",
    }  # fmt: skip
    await redis.set(heartbeat_key("alpaca_market_data"), orjson.dumps(provider))
    await redis.incrby(errors_key("alpaca_market_data"), 1)
    page = await open_dashboard(browser, stack.url)
    storage = page.locator('.service[data-service="storage"]')
    await expect(storage).to_have_attribute("data-state", "error", timeout=WAIT_MS)
    await expect(storage.locator(".reason")).to_contain_text("dead-lettered ticks entry", timeout=WAIT_MS)
    strategy = page.locator('.service[data-service="strategy"] .reason')
    await expect(strategy).to_contain_text("dead-lettered ticks entry", timeout=WAIT_MS)
    alpaca = page.locator('.service[data-service="alpaca_market_data"] .reason')
    await expect(alpaca).to_contain_text("Alpaca rejected ALPACA_KEY/ALPACA_SECRET", timeout=WAIT_MS)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    await page.locator("#health-panel").screenshot(path=str(ARTIFACTS / "error-cards.png"))


async def test_daily_bars_show_dates_and_counts_read_right(stack, browser):
    page = await open_dashboard(browser, stack.url)
    chart, message = page.locator("#chart"), page.locator("#chart-message")
    await expect(chart).to_have_attribute("data-bars", SOME_BARS, timeout=WAIT_MS)
    released = asyncio.Event()

    async def held(route):  # the daily bars answer late: the chart must not show the 1m count meanwhile
        await released.wait()
        await route.continue_()

    await page.route(lambda url: url.endswith("interval=1d"), held)
    await page.locator('#intervals button[data-interval="1d"]').click()
    await expect(page.locator("#chart-symbol")).to_contain_text("· 1d")
    await expect(message).to_have_text("loading 1d bars…")
    assert await chart.get_attribute("data-bars") is None
    released.set()
    await expect(message).to_contain_text("from the API", timeout=WAIT_MS)
    bars = int(await chart.get_attribute("data-bars"))
    await expect(message).to_have_text(
        f"{bars} {'bar' if bars == 1 else 'bars'} from the API; the last one follows live ticks"
    )
    # The time axis of daily bars shows dates (every bar is at midnight: a clock reads "00:00").
    assert await page.evaluate("state.chart.options().timeScale.timeVisible") is False
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    await page.locator("#chart-panel").screenshot(path=str(ARTIFACTS / "chart-1d.png"))
    await page.locator('#intervals button[data-interval="5m"]').click()
    await expect(page.locator("#chart-symbol")).to_contain_text("· 5m")
    assert await page.evaluate("state.chart.options().timeScale.timeVisible") is True


PAGE_OVERFLOW = """() => [...document.querySelectorAll('body *')]
    .map((e) => [e, Math.round(e.getBoundingClientRect().right)]).filter(([, right]) => right > screen.width)
    .slice(0, 5).map(([e, right]) => `${e.tagName.toLowerCase()}#${e.id}.${e.className}: ${right}px`)"""
STRAY_PERCENTAGES = """() => [...document.querySelectorAll('#gainers li, #losers li')].filter((li) => {
    const own = li.getBoundingClientRect();
    const pct = [...li.querySelectorAll('span')].pop().getBoundingClientRect();  // the last one: its %
    return pct.top < own.top - 0.5 || pct.bottom > own.bottom + 0.5 || pct.right > own.right + 0.5;
}).map((li) => li.textContent)"""


async def assert_fits_the_screen(page: Page) -> None:
    # On a phone the layout viewport grows to fit what overflows (and the page is shown zoomed
    # out): compare the page with the screen, not with the window.
    wider = await page.evaluate("document.documentElement.scrollWidth - screen.width")
    width = PHONE["viewport"]["width"]
    assert wider <= 0, (
        f"the page is {wider}px wider than the {width}px screen: {await page.evaluate(PAGE_OVERFLOW)}"
    )


async def test_on_a_phone_the_page_fits_and_movers_keep_their_numbers(stack, phone, redis):
    async with dashboard_running(stack.settings) as url:
        page = await phone.new_page()
        await page.goto(logged_in(url))
        await expect(page.locator("#ws-state")).to_have_attribute("data-state", "open", timeout=WAIT_MS)
        await expect(page.locator("#positions tbody tr").first).to_be_visible(timeout=WAIT_MS)
        # A wide mover: a long ticker at a high price, up by more than ten percent.
        publisher = bus.Publisher(redis, stack.settings.stream_maxlen)
        for price in (633_000.0, 712_345.67):
            tick = PriceTick(source="synthetic", symbol="BRK.A", time=datetime.now(UTC), price=price)
            await publisher.publish(keys.TICKS, [(tick, None)])
            await expect(page.locator('#prices tr[data-symbol="BRK.A"] td.price')).to_have_text(
                f"{price:.2f}"
            )
        await expect(page.locator("#gainers li").first).to_contain_text("BRK.A", timeout=WAIT_MS)
        await assert_fits_the_screen(page)
        assert await page.evaluate(STRAY_PERCENTAGES) == [], "percentages outside their mover's line"
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        await page.screenshot(path=str(ARTIFACTS / "dashboard-phone.png"), full_page=True)
    await expect(page.locator("#ws-state")).to_have_attribute("data-state", "closed", timeout=WAIT_MS)
    await assert_fits_the_screen(page)  # the longest connection badge too
