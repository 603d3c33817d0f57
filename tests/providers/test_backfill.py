"""Backfill from the local REST servers: stored once, resumable, paced through 429 storms."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta

import asyncpg
import pytest

from tradebot.backfill.runner import Backfill
from tradebot.backfill.store import HistoryStore
from tradebot.providers.history import history_source
from tradebot.providers.http import ProviderAuthError
from tradebot.providers.ratelimit import Pacer

from .conftest import SYMBOLS, alpaca_settings, polygon_settings
from .fakes.alpaca import FakeAlpaca
from .fakes.common import RateLimit
from .fakes.polygon import FakePolygon

pytestmark = [pytest.mark.integration, pytest.mark.backends]
END = datetime(2024, 3, 1, 16, tzinfo=UTC)
START = END - timedelta(hours=3)


@pytest.fixture(params=["alpaca", "polygon"])
def fake(request):
    limit = RateLimit(per_second=1_000, burst=1_000)
    made = (FakeAlpaca if request.param == "alpaca" else FakePolygon)(SYMBOLS, page_size=100, limit=limit)
    made.name = request.param
    made.start()
    yield made
    made.stop()


def settings_of(make_settings, fake, **overrides):
    values = alpaca_settings(fake) if fake.name == "alpaca" else polygon_settings(fake)
    return make_settings(**{**values, **overrides})


async def backfill(
    settings, source: str, conn, resume: bool = True, concurrency: int = 3, delay: float = 0.0
):
    history = history_source(source, settings, Pacer(concurrency, delay))
    store = HistoryStore(conn, source)
    await store.setup()
    try:
        return await Backfill(history, store).run(SYMBOLS, ["bars", "trades"], START, END, 10, resume=resume)
    finally:
        await history.http.aclose()


async def stored(conn, source: str) -> tuple[int, int, int]:
    bars = await conn.fetchval(f"SELECT count(*) FROM provider_bars_1m_{source}")
    trades = await conn.fetchval(f"SELECT count(*) FROM price_ticks_{source}")
    distinct = await conn.fetchval(f"SELECT count(DISTINCT (symbol, id)) FROM price_ticks_{source}")
    return bars, trades, distinct


def expected(fake) -> tuple[int, int]:
    start_ms, end_ms = int(START.timestamp() * 1000), int(END.timestamp() * 1000)
    bars = sum(len(fake.market.bars(s, start_ms, end_ms)) for s in SYMBOLS)
    trades = sum(len(fake.market.trades(s, start_ms, end_ms)) for s in SYMBOLS)
    return bars, trades


async def test_backfill_stores_everything_once(make_settings, database_url, fake):
    settings = settings_of(make_settings, fake)
    conn = await asyncpg.connect(database_url)
    try:
        first = await backfill(settings, fake.name, conn)
        bars, trades = expected(fake)
        assert await stored(conn, fake.name) == (bars, trades, trades)
        assert first.rows == bars + trades and first.pages > 4, "pagination followed"
        again = await backfill(settings, fake.name, conn, resume=False)
        assert again.rows == first.rows, "fetched everything again"
        assert await stored(conn, fake.name) == (bars, trades, trades), "and stored nothing twice"
        resumed = await backfill(settings, fake.name, conn)
        assert resumed.skipped == resumed.units == 4 and resumed.rows == 0
        rolled = await conn.fetchval(f"SELECT sum(trades) FROM price_bars_1m_{fake.name}")
        assert rolled == trades, "backfilled trades are rolled up into the 1-minute bars like live ones"
    finally:
        await conn.close()


async def test_backfill_resumes_after_being_killed(make_settings, database_url, fake):
    settings = settings_of(make_settings, fake)
    killed = await asyncpg.connect(database_url)
    run = asyncio.create_task(backfill(settings, fake.name, killed, concurrency=1, delay=0.05))
    while fake.rest_requests < 14 or not await _has_checkpoints(database_url, fake.name):  # noqa: ASYNC110
        await asyncio.sleep(0.02)
    run.cancel()
    await asyncio.gather(run, return_exceptions=True)
    killed.terminate()  # as a killed process's session: its open transaction is rolled back
    conn = await asyncpg.connect(database_url)
    try:
        partial = await stored(conn, fake.name)
        bars, trades = expected(fake)
        assert partial[0] + partial[1] < bars + trades, "killed before the end"
        requests_before = fake.rest_requests
        await backfill(settings, fake.name, conn)
        assert await stored(conn, fake.name) == (bars, trades, trades)
        full_run_requests = requests_before  # at least what a run from scratch needed so far
        assert fake.rest_requests - requests_before < full_run_requests + 8, "resumed, not restarted"
        checkpoints = await conn.fetch(
            "SELECT last_time FROM backfill_checkpoints WHERE source = $1", fake.name
        )
        assert len(checkpoints) == 4 and all(row["last_time"] == END for row in checkpoints)
    finally:
        await conn.close()


def page_rows(fake) -> list[int]:
    start_ms, end_ms = int(START.timestamp() * 1000), int(END.timestamp() * 1000)
    return [
        len(fetch(s, start_ms, end_ms)) for s in SYMBOLS for fetch in (fake.market.bars, fake.market.trades)
    ]


async def _has_checkpoints(database_url: str, source: str) -> bool:
    conn = await asyncpg.connect(database_url)
    try:
        exists = await conn.fetchval("SELECT to_regclass('backfill_checkpoints') IS NOT NULL")
        return bool(exists and await conn.fetchval("SELECT count(*) FROM backfill_checkpoints") >= 2)
    finally:
        await conn.close()


async def test_a_429_storm_is_survived_within_the_configured_rate(make_settings, database_url, fake):
    fake.limit.per_second, fake.limit.burst, fake.limit.tokens = 20, 3, 3
    fake.storm(12)
    settings = settings_of(make_settings, fake)
    conn = await asyncpg.connect(database_url)
    try:
        concurrency, delay = 4, 0.1
        began = time.monotonic()
        result = await backfill(settings, fake.name, conn, concurrency=concurrency, delay=delay)
        elapsed = time.monotonic() - began
        bars, trades = expected(fake)
        assert await stored(conn, fake.name) == (bars, trades, trades)
        assert result.stats["rate_limited"] >= 12 and result.stats["retries"] >= 12
        sent = result.stats["requests"]
        assert sent / elapsed <= concurrency / delay * 1.1, "never faster than the configured pacing"
        assert fake.limit.refused < 3 * result.pages, "backed off instead of hammering"
    finally:
        await conn.close()


async def test_a_rejected_key_names_the_variable(make_settings, database_url, fake):
    wrong = {"alpaca_secret": "wrong"} if fake.name == "alpaca" else {"polygon_api_key": "wrong"}
    settings = settings_of(make_settings, fake, **wrong)
    conn = await asyncpg.connect(database_url)
    try:
        with pytest.raises(ProviderAuthError) as caught:
            await backfill(settings, fake.name, conn)
        variable = "ALPACA_KEY/ALPACA_SECRET" if fake.name == "alpaca" else "POLYGON_API_KEY"
        answer = "request is not authorized" if fake.name == "alpaca" else "Unknown API Key"
        assert variable in str(caught.value) and answer in str(caught.value) and "401" in str(caught.value)
    finally:
        await conn.close()
