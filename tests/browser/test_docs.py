"""The API's documentation pages render in Chromium with no network beyond the API itself:
Swagger UI and ReDoc come from the package, not from a CDN."""

from __future__ import annotations

from urllib.parse import urlparse

import pytest
from playwright.async_api import Route, expect

from api.known_history import write_known_history
from browser.stack import ARTIFACTS, until_ready
from support.services import running
from tradebot.api.service import ApiService

pytestmark = pytest.mark.browser
WAIT_MS = 30_000


@pytest.fixture
async def api_url(make_settings, database_url):
    await write_known_history(database_url)
    settings = make_settings(api_port=0)
    api = ApiService(settings)
    async with running(api, settings=settings) as [runtime]:
        await until_ready(runtime)
        yield f"http://127.0.0.1:{api.port}"


@pytest.fixture
async def offline(browser, api_url):
    """A page that reaches only the API: every other request is refused and remembered."""
    refused: list[tuple[str, str]] = []
    api_host = urlparse(api_url).netloc

    async def only_the_api(route: Route) -> None:
        if urlparse(route.request.url).netloc == api_host:
            await route.continue_()
        else:
            refused.append((route.request.resource_type, route.request.url))
            await route.abort("internetdisconnected")

    await browser.route("**/*", only_the_api)
    page = await browser.new_page()
    yield page, refused


async def test_swagger_ui_renders_offline(offline, api_url):
    page, refused = offline
    await page.goto(f"{api_url}/docs")
    await expect(page.locator(".swagger-ui .info .title")).to_contain_text("TradeBot API", timeout=WAIT_MS)
    await expect(page.locator(".opblock-tag", has_text="market data")).to_be_visible(timeout=WAIT_MS)
    bars = page.locator(".opblock-summary-path", has_text="/sources/{source}/symbols/{symbol}/bars")
    await expect(bars.first).to_be_visible()
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    await page.screenshot(path=str(ARTIFACTS / "api-docs.png"), full_page=False)
    assert refused == [], f"the docs asked the network for {refused}"


async def test_redoc_renders_offline(offline, api_url):
    page, refused = offline
    await page.goto(f"{api_url}/redoc")
    await expect(page.locator("h1", has_text="TradeBot API")).to_be_visible(timeout=WAIT_MS)
    bars = page.locator("h2", has_text="OHLCV bars at 1m/5m/15m/1h/1d over a time range")
    await expect(bars).to_be_visible()
    # ReDoc's "API docs by Redocly" badge links its logo from redocly's CDN: decoration, not content.
    needed = [(kind, url) for kind, url in refused if kind != "image"]
    assert needed == [], f"the docs asked the network for {needed}"
