"""A running stack (real Redis and PostgreSQL, every service in-process) and headless Chromium."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest
from playwright.async_api import BrowserContext, async_playwright

from browser.stack import CHROMIUM, CHROMIUM_ARGS, pipeline_running
from tradebot.common.settings import Settings
from tradebot.demo import seed_demo


@dataclass
class Stack:
    url: str
    settings: Settings


@pytest.fixture
async def stack(make_settings, redis) -> AsyncIterator[Stack]:
    """Demo history, then the whole pipeline with the API and the dashboard, on free ports."""
    settings = make_settings(
        symbols="AAPL,MSFT,TSLA,NVDA,AMZN,META", ticks_per_second=30,
        min_signal_strength=0, cooldown_seconds=0,
        strategy_params={"sma_crossover": {"fast": 3, "slow": 8, "input": "trades"},
                         "rsi": {"period": 5, "input": "trades"}}, api_port=0,
    )  # fmt: skip
    await seed_demo(settings, hours=3, step_seconds=15, redis=redis)
    async with pipeline_running(settings, seed=3) as (url, with_api):
        yield Stack(url, with_api)


@pytest.fixture
async def live_stack(make_settings, request) -> AsyncIterator[Stack]:
    """The whole pipeline with no demo history: everything shown comes from this run (fast
    strategies, an equity snapshot a second); settings overridden by an indirect parameter."""
    settings = make_settings(
        symbols="AAPL,MSFT,TSLA,NVDA", ticks_per_second=30, min_signal_strength=0, cooldown_seconds=0,
        strategy_params={"sma_crossover": {"fast": 3, "slow": 8, "input": "trades"}},
        strategies="sma_crossover", api_port=0, equity_snapshot_seconds=1,
        take_profit_pct=50, stop_loss_pct=50, **getattr(request, "param", {}),
    )  # fmt: skip
    async with pipeline_running(settings, seed=5) as (url, with_api):
        yield Stack(url, with_api)


@pytest.fixture
async def browser(tmp_path) -> AsyncIterator[BrowserContext]:
    """Debian's Chromium, headless, with a fresh profile; missing Chromium fails (it is a dependency)."""
    if not CHROMIUM.exists():
        pytest.fail(f"Chromium not found at {CHROMIUM}: run scripts/install-browser.sh (make test does)")
    async with async_playwright() as playwright:
        context = await playwright.chromium.launch_persistent_context(
            str(tmp_path / "profile"),
            executable_path=str(CHROMIUM),
            args=CHROMIUM_ARGS,
            headless=True,
            viewport={"width": 1440, "height": 1100},
        )
        try:
            yield context
        finally:
            await context.close()


PHONE = {
    "viewport": {"width": 390, "height": 844},
    "device_scale_factor": 3,
    "is_mobile": True,
    "has_touch": True,
}


@pytest.fixture
async def phone() -> AsyncIterator[BrowserContext]:
    """Chromium emulating a 390 px wide phone (mobile viewport rules, touch, a dense screen)."""
    if not CHROMIUM.exists():
        pytest.fail(f"Chromium not found at {CHROMIUM}: run scripts/install-browser.sh (make test does)")
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        context = await browser.new_context(**PHONE)
        try:
            yield context
        finally:
            await context.close()
            await browser.close()
