"""`tradebot demo`: hours of realistic history, so the dashboard has something to show at once.

The history is made by the real parts, not invented rows: the synthetic market
generates the ticks, the configured strategies turn them into signals, and the
paper broker into orders, fills and positions. Everything lands in the database
through the storage writer (which also rolls up the 1-minute bars), and the
latest prices, the account and the recent trades land in Redis where the live
services keep theirs. The demo's account replaces the paper account there, so
what the demo reports is what the dashboard shows.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import asyncpg
from redis.asyncio import Redis

from tradebot.api.account import read_account
from tradebot.api.models import Account
from tradebot.backtest.engine import Simulation
from tradebot.common import bus, keys
from tradebot.common.models import Fill, Message, PriceTick, TradeSignal
from tradebot.common.settings import Settings
from tradebot.common.symbols import configured_symbols
from tradebot.execution.paper import PaperBroker
from tradebot.execution.portfolio import Portfolio
from tradebot.market_data.synthetic import SyntheticMarket, reference_price
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
    account: Account | None = None  # as the API and dashboard show it, once published to Redis


@dataclass(frozen=True)
class DemoMarket:
    """The synthetic market over [start, end), one tick per symbol per step, reproducible by seed."""

    symbols: list[str]
    source: str
    start: datetime
    end: datetime
    step: timedelta
    seed: int

    def rounds(self) -> Iterator[list[PriceTick]]:
        market = SyntheticMarket(self.symbols, self.step.total_seconds(), source=self.source, seed=self.seed)
        moment = self.start
        while moment < self.end:
            yield market.next_ticks(len(self.symbols), moment)
            moment += self.step

    def scale_to(self, targets: Mapping[str, float]) -> dict[str, float]:
        """Per symbol, the factor that makes its walk end at `targets` (where live prices are now)."""
        closing: dict[str, float] = {}
        for ticks in self.rounds():
            closing.update((tick.symbol, tick.price) for tick in ticks)
        return {s: targets[s] / closing[s] for s in closing if s in targets and closing[s] > 0}


def scaled(tick: PriceTick, factor: float) -> PriceTick:
    if factor == 1.0:
        return tick
    return tick.model_copy(
        update={
            "price": round(tick.price * factor, 4),
            "bid": round(tick.bid * factor, 4) if tick.bid is not None else None,
            "ask": round(tick.ask * factor, 4) if tick.ask is not None else None,
        }
    )


def generate(
    settings: Settings, market: DemoMarket, factors: Mapping[str, float], history: DemoHistory
) -> Iterator[Message]:
    """Pure apart from `history`'s counters: every tick, signal, order, fill and position, in time order.

    The live strategies and paper broker run on the market's ticks, as in a backtest.
    """
    strategies = build_strategies(settings.strategies, settings.strategy_params)
    simulation = Simulation(
        strategies, PaperBroker.from_settings(settings), history.portfolio, settings.bar_close_grace
    )
    for ticks in market.rounds():
        for raw in ticks:
            tick = scaled(raw, factors.get(raw.symbol, 1.0))
            history.ticks += 1
            yield tick
            for message in simulation.messages_of(tick):
                history.signals += isinstance(message, TradeSignal)
                history.fills += isinstance(message, Fill)
                yield message


async def seed_demo(
    settings: Settings,
    hours: float = 6.0,
    step_seconds: float = 5.0,
    seed: int = 42,
    redis: Redis | None = None,
) -> DemoHistory:
    """Write `hours` of history ending now; set prices, account and recent trades in Redis.

    Each symbol's history ends where its live price is now (or where the synthetic market
    starts), so the chart runs on into live ticks without a jump.
    """
    end = datetime.now(UTC).replace(microsecond=0)
    symbols = configured_symbols(settings)
    start, step = end - timedelta(hours=hours), timedelta(seconds=step_seconds)
    market = DemoMarket(symbols, settings.data_source, start, end, step, seed)
    live = await keys.read_latest_prices(redis) if redis is not None else {}
    factors = market.scale_to({s: live.get(s, reference_price(s)) for s in symbols})
    history = DemoHistory(Portfolio.opening(settings.starting_cash))
    messages = generate(settings, market, factors, history)
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
        history.account = await read_account(redis, settings.starting_cash)
    return history


async def publish_state(
    redis: Redis,
    settings: Settings,
    portfolio: Portfolio,
    latest: dict[str, PriceTick],
    trades: list[Message],
) -> None:
    """Latest prices, the account (replacing the one there: the history is the demo's) and recent
    trades. A running execution service reads the account in each transaction, so it goes on from it.

    Signals are left off the streams on purpose: the execution service would trade them again.
    """
    if latest:
        await redis.hset(keys.LATEST_PRICES, mapping={s: t.model_dump_json() for s, t in latest.items()})
    await redis.set(keys.PORTFOLIO, portfolio.model_dump_json())
    publisher = bus.Publisher(redis, settings.stream_maxlen)
    for message in trades:
        stream = keys.ORDERS if message.kind == "order" else keys.FILLS
        await publisher.publish(stream, [(message, None)])
