"""Driving the execution service by hand in tests: signals, covered trades, the account, an API app."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from itertools import count

import httpx

from support.auth import AUTH_HEADERS
from tradebot.api.app import create_app
from tradebot.api.deps import ApiState
from tradebot.api.sources import SourceCatalog
from tradebot.api.store import HistoryStore
from tradebot.common import bus, keys
from tradebot.common.connections import connect_postgres
from tradebot.common.models import PriceTick, Side, TradeSignal
from tradebot.common.settings import Settings
from tradebot.execution.portfolio import Portfolio

START = datetime.now(UTC)
_clock = count(1)


def signal(n: int, symbol: str, side: Side = Side.BUY, strategy: str = "sma_crossover") -> TradeSignal:
    return TradeSignal(
        id=f"{strategy}:synthetic:{symbol}:c-{n}", time=START, strategy=strategy, symbol=symbol,
        side=side, strength=1.0, reason="test", price=100.0, source="synthetic", tick_id=f"c-{n}",
        tick_time=START,
    )  # fmt: skip


async def trade(redis, publisher: bus.Publisher, symbol: str, price: float) -> None:
    """A trade, later than every one before, covered by the strategy's progress."""
    tick = PriceTick(
        source="synthetic", symbol=symbol, time=START + timedelta(seconds=next(_clock)), price=price, size=1
    )
    await publisher.publish(keys.TICKS, [(tick, None)])
    last = await redis.xrevrange(keys.TICKS, count=1)
    await redis.hset(keys.STRATEGY_PROGRESS, "0", last[0][0])


async def portfolio(redis) -> Portfolio:
    return Portfolio.model_validate_json(await redis.get(keys.PORTFOLIO))


@asynccontextmanager
async def api_client(settings: Settings, redis) -> AsyncIterator[httpx.AsyncClient]:
    """The API app in-process over a real pool and Redis, called with the test token."""
    pool = await connect_postgres(settings.database_url)
    catalog = SourceCatalog(pool)
    state = ApiState(settings, catalog, HistoryStore(pool, catalog), redis)
    app = create_app(state, live=lambda: (True, {}), ready=lambda: (True, {}))
    try:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(
            transport=transport, base_url="http://api", headers=AUTH_HEADERS
        ) as http:
            yield http
    finally:
        await pool.close()
