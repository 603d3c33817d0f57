"""Parity: the same recorded ticks through the live services (real processes, Redis, PostgreSQL)
and through the backtest give identical signals, orders and fills (price, quantity, fee)."""

from __future__ import annotations

import asyncio
import subprocess
from datetime import UTC, datetime, timedelta

import asyncpg
import orjson
import pytest

from support.services import service_process, stop_process
from tradebot.backtest.data import stored_ticks
from tradebot.backtest.run import run_backtest
from tradebot.common import keys, wire
from tradebot.common.models import PriceTick
from tradebot.common.settings import Settings
from tradebot.execution.paper import PaperBroker
from tradebot.market_data.synthetic import SyntheticMarket
from tradebot.storage.schema import ensure_schema
from tradebot.strategy.registry import STRATEGY_CLASSES, build_strategies

pytestmark = pytest.mark.integration

SYMBOLS = ["AAPL", "MSFT", "TSLA", "NVDA", "AMZN", "META"]
START = datetime(2026, 1, 5, 14, 30, tzinfo=UTC)
PARAMS = {
    "sma_crossover": {"fast": 3, "slow": 8},
    "rsi": {"period": 5, "oversold": 40, "overbought": 60},
    "bollinger": {"period": 8, "width": 1.5},
    "donchian_breakout": {"entry": 6, "exit": 3},
}
ENV = {
    "STRATEGIES": ",".join(STRATEGY_CLASSES),
    "STRATEGY_PARAMS": orjson.dumps(PARAMS).decode(),
    "MIN_SIGNAL_STRENGTH": "0.2",
    "COOLDOWN_SECONDS": "120",
    "TRAILING_STOP_PCT": "1.5",
    "SIZING": "risk",
    "RISK_PER_TRADE_PCT": "0.5",
    "BAR_CLOSE_GRACE": "600",  # no bar closes by the clock while the test runs: all close by trades
    "WATERMARK_WAIT_SECONDS": "600",  # execution always waits for the strategy (a loaded CI machine)
    "LOG_LEVEL": "WARNING",
    "PROBE_PORT": "0",
}


def recorded() -> list[PriceTick]:
    """Two hours of trades, each tick at its own time (as a provider's are)."""
    market = SyntheticMarket(SYMBOLS, 2.0, seed=4, volatility=0.8)
    ticks: list[PriceTick] = []
    for index in range(3_600):
        moment = START + timedelta(seconds=2 * index)
        batch = market.next_ticks(len(SYMBOLS), moment)
        ticks.extend(
            t.model_copy(update={"time": moment + timedelta(milliseconds=10 * i)})
            for i, t in enumerate(batch)
        )
    closing = ticks[-1].time + timedelta(minutes=2)
    ticks.extend(
        PriceTick(
            id=f"close-{s}",
            source="synthetic",
            symbol=s,
            time=closing + timedelta(milliseconds=i),
            price=100.0,
        )
        for i, s in enumerate(SYMBOLS)
    )
    return ticks


async def settle(redis, what: str, check, within: float = 240) -> None:
    for _ in range(int(within * 10)):
        if await check():
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


async def caught_up(redis, stream: str, group: str) -> bool:
    groups = {g["name"].decode(): g for g in await redis.xinfo_groups(stream)}
    last = await redis.xrevrange(stream, count=1)
    info = groups.get(group)
    return bool(info and last and info["pending"] == 0 and info["last-delivered-id"] == last[0][0])


def messages(entries) -> list:
    return [wire.decode(fields) for _, fields in entries]


async def test_live_services_and_backtest_trade_identically(redis, redis_url, database_url):
    ticks = recorded()
    conn = await asyncpg.connect(database_url)
    await ensure_schema(conn)
    env = {**ENV, "REDIS_URL": redis_url, "DATABASE_URL": database_url}
    processes = [
        service_process(name, env, stdout=subprocess.DEVNULL) for name in ("storage", "strategy", "execution")
    ]
    try:
        for offset in range(0, len(ticks), 2_000):
            pipe = redis.pipeline(transaction=False)
            for tick in ticks[offset : offset + 2_000]:
                pipe.xadd(keys.TICKS, wire.encode(tick))
            await pipe.execute()

        async def done() -> bool:
            stored = await conn.fetchval("SELECT count(*) FROM price_ticks_synthetic")
            return (
                stored == len(ticks)
                and await caught_up(redis, keys.TICKS, "execution")
                and await caught_up(redis, keys.SIGNALS, "execution")
            )

        await settle(redis, "the live services to finish the recording", done)
    finally:
        for process in processes:
            assert stop_process(process) == 0
    live_signals = messages(await redis.xrange(keys.SIGNALS))
    live_orders = messages(await redis.xrange(keys.ORDERS))
    live_fills = messages(await redis.xrange(keys.FILLS))

    settings = Settings(_env_file=None, **{k.lower(): v for k, v in ENV.items()})
    strategies = build_strategies(settings.strategies, settings.strategy_params)
    end = ticks[-1].time + timedelta(microseconds=1)
    history = [tick async for tick in stored_ticks(conn, "synthetic", None, START, end)]
    await conn.close()
    assert len(history) == len(ticks)
    result = run_backtest(
        strategies, PaperBroker.from_settings(settings), history, settings.starting_cash, START, end,
        settings.bar_close_grace,
    )  # fmt: skip

    def signal_view(signals):
        return {s.id: (s.side, s.strength, s.price, s.atr, s.tick_id) for s in signals}

    def order_view(orders):
        return {o.id: (o.status, o.side, o.quantity, o.reference_price, o.reason, o.time) for o in orders}

    def fill_view(fills):
        return {f.id: (f.price, f.quantity, f.fee, f.time) for f in fills}

    print(f"parity: {len(live_signals)} signals, {len(live_orders)} orders, {len(live_fills)} fills")
    assert len(live_fills) > 10 and any(o.signal_id.startswith("exit:") for o in live_orders)
    assert any(o.status == "rejected" for o in live_orders)
    assert signal_view(result.signals) == signal_view(live_signals)
    assert order_view(result.orders) == order_view(live_orders)
    assert fill_view(result.fills) == fill_view(live_fills)
