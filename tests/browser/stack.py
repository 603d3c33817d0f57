"""Helpers of the browser tests: where Chromium is, how it starts, and a dashboard on a chosen port."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from support.auth import AUTH_TOKEN
from support.services import eventually, running
from tradebot.api.service import ApiService
from tradebot.common.settings import Settings
from tradebot.dashboard.service import DashboardService
from tradebot.execution.service import ExecutionService
from tradebot.market_data.service import SyntheticMarketDataService
from tradebot.storage.service import StorageService
from tradebot.strategy.service import StrategyService

CHROMIUM = Path(os.environ.get("CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]  # fmt: skip
ARTIFACTS = Path(os.environ.get("TEST_ARTIFACTS", "test-artifacts"))


def logged_in(url: str) -> str:
    """The dashboard's URL with the token, as `tradebot up` prints it: opening it logs in."""
    return f"{url}/?token={AUTH_TOKEN}"


async def until_ready(service_runtime) -> None:
    async def ready() -> bool:
        return service_runtime.ctx.ready

    await eventually(ready, what=f"{service_runtime.service.service_id} to be ready")


@asynccontextmanager
async def dashboard_running(settings: Settings, port: int = 0) -> AsyncIterator[str]:
    """The dashboard service on `port` (0: any); yields its URL."""
    dashboard = DashboardService(settings.model_copy(update={"dashboard_port": port}))
    async with running(dashboard, settings=settings) as [runtime]:
        await until_ready(runtime)
        yield f"http://127.0.0.1:{dashboard.port}"


@asynccontextmanager
async def pipeline_running(settings: Settings, seed: int) -> AsyncIterator[tuple[str, Settings]]:
    """Every service in-process (the synthetic feed seeded with `seed`), then the dashboard;
    yields its URL and the settings that reach the API."""
    api = ApiService(settings)
    feed = SyntheticMarketDataService(settings, seed=seed)
    pipeline = (feed, StrategyService(settings), ExecutionService(settings), StorageService(settings), api)
    async with running(*pipeline, settings=settings) as runtimes:
        await until_ready(runtimes[-1])
        with_api = settings.model_copy(update={"api_url": f"http://127.0.0.1:{api.port}"})
        async with dashboard_running(with_api) as url:
            yield url, with_api
