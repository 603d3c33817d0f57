"""A running stack (real Redis and PostgreSQL, every service in-process) and headless Chromium."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest
from playwright.async_api import BrowserContext, async_playwright

from browser.stack import CHROMIUM, CHROMIUM_ARGS, dashboard_running, until_ready
from support.services import running
from tradebot.api.service import ApiService
from tradebot.common.settings import Settings
from tradebot.demo import seed_demo
from tradebot.execution.service import ExecutionService
from tradebot.market_data.service import SyntheticMarketDataService
from tradebot.storage.service import StorageService
from tradebot.strategy.service import StrategyService


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
    api = ApiService(settings)
    pipeline = (
        SyntheticMarketDataService(settings, seed=3), StrategyService(settings), ExecutionService(settings),
        StorageService(settings), api,
    )  # fmt: skip
    async with running(*pipeline, settings=settings) as runtimes:
        await until_ready(runtimes[-1])
        with_api = settings.model_copy(update={"api_url": f"http://127.0.0.1:{api.port}"})
        async with dashboard_running(with_api) as url:
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
    api = ApiService(settings)
    pipeline = (
        SyntheticMarketDataService(settings, seed=5), StrategyService(settings), ExecutionService(settings),
        StorageService(settings), api,
    )  # fmt: skip
    async with running(*pipeline, settings=settings) as runtimes:
        await until_ready(runtimes[-1])
        with_api = settings.model_copy(update={"api_url": f"http://127.0.0.1:{api.port}"})
        async with dashboard_running(with_api) as url:
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
