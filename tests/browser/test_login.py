"""Logging in to the dashboard in Chromium: the login page, the token URL, the cookie, logout,
a wrong token and a session that ends while the page is open."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest
from playwright.async_api import BrowserContext, Page, expect

from browser.stack import ARTIFACTS, dashboard_running, logged_in, until_ready
from support.auth import AUTH_TOKEN
from support.services import running
from tradebot.api.auth import SESSION_COOKIE
from tradebot.api.service import ApiService

pytestmark = pytest.mark.browser
WAIT_MS = 30_000


@asynccontextmanager
async def dashboard(make_settings, **overrides) -> AsyncIterator[str]:
    """The API and the dashboard on free ports (no pipeline: logging in needs none); the URL."""
    settings = make_settings(api_port=0, **overrides)
    api = ApiService(settings)
    async with running(api, settings=settings) as [runtime]:
        await until_ready(runtime)
        async with dashboard_running(
            settings.model_copy(update={"api_url": f"http://127.0.0.1:{api.port}"})
        ) as url:
            yield url


async def session_cookie(browser: BrowserContext) -> dict | None:
    return next((c for c in await browser.cookies() if c["name"] == SESSION_COOKIE), None)


async def live(page: Page) -> None:
    await expect(page.locator("#ws-state")).to_have_attribute("data-state", "open", timeout=WAIT_MS)


async def test_the_login_page_a_wrong_token_the_cookie_and_logout(make_settings, browser):
    async with dashboard(make_settings) as url:
        page = await browser.new_page()
        await page.goto(url)
        await expect(page).to_have_url(f"{url}/login", timeout=WAIT_MS)
        await expect(page.locator("#login h2")).to_have_text("Log in")

        await page.fill("#token", "not-the-token-of-this-stack")
        await page.click("#login button")
        await expect(page.locator("#note")).to_have_text("That is not the token of this stack.")
        assert await session_cookie(browser) is None

        await page.fill("#token", AUTH_TOKEN)
        await page.click("#login button")
        await expect(page).to_have_url(f"{url}/", timeout=WAIT_MS)
        await live(page)
        cookie = await session_cookie(browser)
        assert cookie is not None and cookie["httpOnly"] and cookie["sameSite"] == "Strict"
        assert AUTH_TOKEN not in cookie["value"]
        assert SESSION_COOKIE not in await page.evaluate("document.cookie")  # no script can read it
        # The page's own calls carry the session: the chart's bars come through /api.
        await expect(page.locator("#logout")).to_be_visible()
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        await page.screenshot(path=str(ARTIFACTS / "dashboard-logged-in.png"))

        await page.click("#logout button")
        await expect(page).to_have_url(f"{url}/login?note=out", timeout=WAIT_MS)
        await expect(page.locator("#note")).to_have_text("You are logged out.")
        assert await session_cookie(browser) is None
        await page.goto(url)
        await expect(page).to_have_url(f"{url}/login", timeout=WAIT_MS)


async def test_the_token_url_logs_in_and_leaves_the_address_bar(make_settings, browser):
    async with dashboard(make_settings) as url:
        page = await browser.new_page()
        await page.goto(logged_in(url))
        await expect(page).to_have_url(f"{url}/", timeout=WAIT_MS)
        await live(page)
        assert AUTH_TOKEN not in await page.evaluate("location.href + document.referrer")
        await page.goto(f"{url}/?token=wrong-token-of-another-stack")
        await expect(page.locator("#note")).to_have_text("That is not the token of this stack.")


async def test_a_session_that_ends_takes_the_page_to_the_login(make_settings, browser):
    async with dashboard(make_settings, session_seconds=4) as url:
        page = await browser.new_page()
        await page.goto(logged_in(url))
        await live(page)
        # The live feed closes when the session ends; the page finds out and asks for the token.
        await expect(page).to_have_url(f"{url}/login?note=expired", timeout=WAIT_MS)
        await expect(page.locator("#note")).to_have_text("Your session has ended: log in again.")
        await page.fill("#token", AUTH_TOKEN)
        await page.click("#login button")
        await live(page)
