"""The whole pipeline, end to end, on real Redis and PostgreSQL."""

from __future__ import annotations

import asyncpg
import pytest

from support.services import eventually, running
from tradebot.common.health import HealthState
from tradebot.common.heartbeat import read_health
from tradebot.execution.service import ExecutionService
from tradebot.market_data.service import SyntheticMarketDataService
from tradebot.storage.schema import ensure_schema
from tradebot.storage.service import StorageService
from tradebot.strategy.service import StrategyService

pytestmark = [pytest.mark.integration, pytest.mark.backends]


async def count(conn: asyncpg.Connection, table: str) -> int:
    return await conn.fetchval(f"SELECT count(*) FROM {table}")


async def test_ticks_become_signals_orders_fills_and_rows(make_settings, redis, database_url):
    settings = make_settings(
        symbols="AAPL,MSFT,TSLA",
        ticks_per_second=600,
        min_signal_strength=0,
        cooldown_seconds=0,
        strategy_params={
            "sma_crossover": {"fast": 3, "slow": 8, "input": "trades"},
            "rsi": {"period": 5, "input": "trades"},
        },
    )
    market = SyntheticMarketDataService(settings, seed=7)
    conn = await asyncpg.connect(database_url)
    await ensure_schema(conn)
    async with running(
        StrategyService(settings), ExecutionService(settings), StorageService(settings), settings=settings
    ):
        try:
            async with running(market, settings=settings) as [market_runtime]:

                async def filled_and_stored() -> bool:
                    return await conn.fetchval("SELECT count(*) FROM fills") > 0

                await eventually(filled_and_stored, what="a fill stored in PostgreSQL")
            published = market_runtime.ctx.counters["ticks_published"]  # entries carry batches of ticks

            async def all_ticks_stored() -> bool:
                return await count(conn, "price_ticks_synthetic") == published

            await eventually(all_ticks_stored, what=f"all {published} ticks stored")
            assert await count(conn, "trade_signals") > 0
            assert await count(conn, "orders") >= await count(conn, "fills") > 0
            bars = await conn.fetchrow(
                "SELECT sum(trades) AS trades, sum(volume) AS volume FROM price_bars_1m_synthetic"
            )
            ticks = await conn.fetchrow(
                "SELECT count(*) AS trades, sum(size) AS volume FROM price_ticks_synthetic"
            )
            assert bars["trades"] == ticks["trades"] == published
            assert bars["volume"] == pytest.approx(ticks["volume"])
            positions = await conn.fetch("SELECT * FROM positions")
            assert positions, "fills produce positions"
        finally:
            await conn.close()
        states = {h.service: h.state for h in await read_health(redis)}
        assert states == {
            "market_data": HealthState.HEALTHY,
            "strategy": HealthState.HEALTHY,
            "execution": HealthState.HEALTHY,
            "storage": HealthState.HEALTHY,
        }
