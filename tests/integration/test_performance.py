"""Closed trades, performance and the equity curve the API serves agree with the fills and orders
stored in PostgreSQL by a running execution and storage service (real Redis and PostgreSQL)."""

from __future__ import annotations

import asyncpg
import pytest

from support.services import eventually, running
from support.trading import api_client, signal, trade
from tradebot.common import bus, keys
from tradebot.common.models import Side
from tradebot.execution.service import ExecutionService
from tradebot.storage.service import StorageService

pytestmark = pytest.mark.integration

# What the stored fills say, computed in SQL by hand: each sell against the buy before it.
ROUND_TRIPS_SQL = """
SELECT s.symbol, b.price AS entry_price, s.price AS exit_price,
       (s.price - b.price) * s.quantity - s.fee - b.fee AS pnl, o.reason
FROM fills s JOIN orders o ON o.id = s.order_id
JOIN LATERAL (SELECT * FROM fills b WHERE b.symbol = s.symbol AND b.side = 'buy' AND b.time <= s.time
              ORDER BY b.time DESC LIMIT 1) b ON true
WHERE s.side = 'sell' ORDER BY s.time
"""


async def test_trades_performance_and_equity_follow_the_stored_fills(make_settings, redis, database_url):
    settings = make_settings(
        sizing="quantity",
        order_quantity=10,
        stop_loss_pct=5,
        take_profit_pct=50,
        cooldown_seconds=0,
        equity_snapshot_seconds=1,
    )
    publisher = bus.Publisher(redis, settings.stream_maxlen)
    services = ExecutionService(settings), StorageService(settings)
    async with running(*services, settings=settings) as [execution, _], api_client(settings, redis) as api:

        async def filled(n: int) -> bool:
            return execution.ctx.counters["orders_filled"] >= n

        entries = [signal(1, "AAPL"), signal(2, "MSFT", strategy="rsi"), signal(3, "TSLA")]
        await publisher.publish(keys.SIGNALS, [(s, None) for s in entries])
        for symbol, price in (("AAPL", 100.0), ("MSFT", 200.0), ("TSLA", 50.0)):
            await trade(redis, publisher, symbol, price)
        await eventually(lambda: filled(3), what="three entries")
        await publisher.publish(keys.SIGNALS, [(signal(4, "AAPL", Side.SELL), None)])
        await trade(redis, publisher, "AAPL", 110.0)  # the strategy's sell: a win
        await trade(redis, publisher, "MSFT", 180.0)  # the stop-loss: a loss
        await eventually(lambda: filled(5), what="the two exits")

        async def stored() -> bool:
            conn = await asyncpg.connect(database_url)
            try:
                return await conn.fetchval("SELECT count(*) FROM fills") == 5
            finally:
                await conn.close()

        await eventually(stored, what="storage to store the five fills")

        async def snapshots() -> bool:
            points = (await api.get("/equity")).json()
            return len(points) >= 2 and points[-1]["open_positions"] == 1

        await eventually(snapshots, what="equity snapshots after the exits")
        trades = (await api.get("/trades")).json()
        performance = (await api.get("/performance")).json()
        points = (await api.get("/equity")).json()
        account = (await api.get("/account")).json()

    conn = await asyncpg.connect(database_url)
    try:
        expected = [dict(row) for row in await conn.fetch(ROUND_TRIPS_SQL)]
    finally:
        await conn.close()
    assert [(t["symbol"], t["entry_price"], t["exit_price"]) for t in reversed(trades)] == [
        (e["symbol"], e["entry_price"], e["exit_price"]) for e in expected
    ]
    assert [t["pnl"] for t in reversed(trades)] == [pytest.approx(e["pnl"], abs=1e-4) for e in expected]
    assert [t["exit_reason"] for t in reversed(trades)] == ["sell signal", "stop-loss"]
    assert all(t["holding_seconds"] > 0 for t in trades)
    by_strategy = {row["name"]: row for row in performance["by_strategy"]}
    assert by_strategy["sma_crossover"]["trades"] == 1 and by_strategy["sma_crossover"]["wins"] == 1
    assert by_strategy["rsi"]["win_rate_pct"] == 0.0
    assert performance["pnl"] == pytest.approx(sum(e["pnl"] for e in expected), abs=1e-3)
    assert {row["name"] for row in performance["by_symbol"]} == {"AAPL", "MSFT"}
    assert points[-1]["equity"] == pytest.approx(account["equity"], abs=0.01)
    assert min(p["drawdown_pct"] for p in points) <= 0 and points[0]["drawdown_pct"] == 0
