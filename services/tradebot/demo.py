"""`tradebot demo`: hours of realistic history, so the dashboard has something to show at once.

The history is made by the real parts, not invented rows: the synthetic market
generates the ticks, the configured strategies turn them into signals, and the
paper broker into orders, fills and positions. Everything lands in the database
through the storage writer (which also rolls up the 1-minute bars), and the
latest prices, the account and the recent trades land in Redis where the live
services keep theirs.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import asyncpg
from redis.asyncio import Redis

from tradebot.common import bus
from tradebot.common.models import Message, PriceTick
from tradebot.common.settings import Settings
from tradebot.common.symbols import select_symbols
from tradebot.execution.paper import TradingCosts, execute_signal
from tradebot.execution.portfolio import Portfolio
from tradebot.execution.risk import RiskLimits
from tradebot.execution.service import PORTFOLIO_KEY
from tradebot.market_data.publishing import LATEST_PRICES_KEY
from tradebot.market_data.synthetic import SyntheticMarket
from tradebot.storage.schema import ensure_schema
from tradebot.storage.writer import BatchWriter
from tradebot.strategy.registry import build_strategies

WRITE_BATCH = 20_000
RECENT_TRADES = 50


@dataclass
class DemoHistory:
    """What the generator produced, and the account it ended with."""

    portfolio: Portfolio
    ticks: int = 0
    signals: int = 0
    fills: int = 0


def generate(
    settings: Settings, start: datetime, end: datetime, step: timedelta, seed: int, history: DemoHistory
) -> Iterator[Message]:
    """Pure apart from `history`'s counters: every tick, signal, order, fill and position, in time order."""
    symbols = select_symbols(settings.symbol_mode, settings.symbols, settings.max_symbols)
    market = SyntheticMarket(
        symbols, seconds_per_tick=step.total_seconds(), source=settings.data_source, seed=seed
    )
    strategies = build_strategies(settings)
    limits = RiskLimits.from_settings(settings)
    costs = TradingCosts(settings.slippage_bps, settings.fee_per_share, settings.min_fee)
    moment = start
    while moment < end:
        for tick in market.next_ticks(len(symbols), moment):
            history.ticks += 1
            yield tick
            for strategy in strategies:
                signal = strategy.on_tick(tick)
                if signal is None:
                    continue
                history.signals += 1
                result = execute_signal(
                    history.portfolio, signal, settings.order_quantity, limits, costs, tick.time
                )
                yield signal
                yield result.order
                if result.fill is not None and result.position is not None:
                    history.fills += 1
                    yield result.fill
                    yield result.position
        moment += step


async def seed_demo(
    settings: Settings,
    hours: float = 6.0,
    step_seconds: float = 5.0,
    seed: int = 42,
    redis: Redis | None = None,
) -> DemoHistory:
    """Write `hours` of history ending now; set prices, account and recent trades in Redis."""
    end = datetime.now(UTC).replace(microsecond=0)
    history = DemoHistory(Portfolio.opening(settings.starting_cash))
    messages = generate(
        settings, end - timedelta(hours=hours), end, timedelta(seconds=step_seconds), seed, history
    )
    latest: dict[str, PriceTick] = {}
    trades: list[Message] = []
    conn = await asyncpg.connect(settings.database_url)
    try:
        writer = BatchWriter(conn, await ensure_schema(conn, (settings.data_source,)))
        batch: list[Message] = []
        for message in messages:
            batch.append(message)
            if isinstance(message, PriceTick):
                latest[message.symbol] = message
            elif message.kind in ("order", "fill"):
                trades = [*trades[-RECENT_TRADES:], message]
            if len(batch) >= WRITE_BATCH:
                await writer.write(batch)
                batch = []
        await writer.write(batch)
        await conn.execute("ANALYZE")
    finally:
        await conn.close()
    if redis is not None:
        await publish_state(redis, settings, history.portfolio, latest, trades)
    return history


async def publish_state(
    redis: Redis,
    settings: Settings,
    portfolio: Portfolio,
    latest: dict[str, PriceTick],
    trades: list[Message],
) -> None:
    """Latest prices, the account (unless the execution service already keeps one) and recent trades.

    Signals are left off the streams on purpose: the execution service would trade them again.
    """
    if latest:
        await redis.hset(LATEST_PRICES_KEY, mapping={s: t.model_dump_json() for s, t in latest.items()})
    await redis.set(PORTFOLIO_KEY, portfolio.model_dump_json(), nx=True)
    publisher = bus.Publisher(redis, settings.stream_maxlen)
    for message in trades:
        stream = bus.ORDERS if message.kind == "order" else bus.FILLS
        await publisher.publish(stream, [(message, None)])
