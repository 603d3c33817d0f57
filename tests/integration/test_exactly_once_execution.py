"""A signal delivered twice — re-published or redelivered after a crash — trades once; orders fill
on the first trade after their signal's tick, once the strategy has covered that trade."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest

from support.services import eventually, running
from tradebot.common import bus, keys, wire
from tradebot.common.models import PriceTick, Side, TradeSignal
from tradebot.execution.portfolio import Portfolio
from tradebot.execution.service import ExecutionService

pytestmark = pytest.mark.integration


NOW = datetime.now(UTC)


def signal(n: int, symbol: str = "AAPL", side: Side = Side.BUY) -> TradeSignal:
    return TradeSignal(
        id=f"sma_crossover:synthetic:{symbol}:tick-{n}", time=NOW, strategy="sma_crossover", symbol=symbol,
        side=side, strength=1.0, reason="test", price=100.0, source="synthetic", tick_id=f"tick-{n}",
        tick_time=NOW,
    )  # fmt: skip


def trade(symbol: str, price: float, seconds: float = 1) -> PriceTick:
    return PriceTick(
        source="synthetic", symbol=symbol, time=NOW + timedelta(seconds=seconds), price=price, size=1
    )


async def publish_covered(redis, publisher: bus.Publisher, ticks: list[PriceTick]) -> None:
    """Ticks, and the strategy's progress covering them (what the strategy writes with its signals)."""
    await publisher.publish(keys.TICKS, [(t, None) for t in ticks])
    last = await redis.xrevrange(keys.TICKS, count=1)
    await redis.hset(keys.STRATEGY_PROGRESS, "0", last[0][0])


async def test_republished_and_redelivered_signals_trade_once(make_settings, redis):
    settings = make_settings(claim_idle_seconds=0.5, sizing="quantity", order_quantity=10)
    publisher = bus.Publisher(redis, settings.stream_maxlen)
    # A consumer of the execution group took signal 1 and died before acknowledging it.
    await redis.xgroup_create(keys.SIGNALS, "execution", id="0", mkstream=True)
    await publisher.publish(keys.SIGNALS, [(signal(1), None)])
    taken = await redis.xreadgroup("execution", "execution-crashed-pod", {keys.SIGNALS: ">"}, count=10)
    assert len(taken[0][1]) == 1
    # The same signal is also re-published (an upstream replay), and a second distinct signal follows.
    await publisher.publish(keys.SIGNALS, [(signal(1), None), (signal(1), None), (signal(2, "MSFT"), None)])
    await publish_covered(redis, publisher, [trade("AAPL", 101.0), trade("MSFT", 102.0)])

    service = ExecutionService(settings)
    async with running(service, settings=settings) as [runtime]:

        async def all_handled() -> bool:
            pending = await redis.xpending(keys.SIGNALS, "execution")
            counters = runtime.ctx.counters
            return pending["pending"] == 0 and counters["orders_filled"] + counters["duplicate_signals"] == 4

        await eventually(all_handled, what="every delivery of the signals to be handled")
        assert runtime.ctx.counters["orders_filled"] == 2
        assert runtime.ctx.counters["duplicate_signals"] == 2

    orders = [wire.decode(fields) for _, fields in await redis.xrange(keys.ORDERS)]
    fills = [wire.decode(fields) for _, fields in await redis.xrange(keys.FILLS)]
    assert sorted(o.signal_id for o in orders) == [signal(1).id, signal(2, "MSFT").id]
    assert sorted(f.price for f in fills) == [101.0505, 102.051]  # the next trades, plus 5 bp slippage
    portfolio = Portfolio.model_validate_json(await redis.get(keys.PORTFOLIO))
    assert portfolio.quantity("AAPL") == portfolio.quantity("MSFT") == 10 and portfolio.orders_filled == 2


async def test_ticks_wait_for_the_strategy_then_exits_trade_on_them(make_settings, redis):
    """A trade the strategy has not covered is not acted on (its signals may still come), unless the
    strategy is later than WATERMARK_WAIT_SECONDS; a stop-loss then exits with its reason."""
    settings = make_settings(sizing="quantity", order_quantity=10, stop_loss_pct=1, watermark_wait_seconds=3)
    publisher = bus.Publisher(redis, settings.stream_maxlen)
    await publisher.publish(keys.SIGNALS, [(signal(1), None)])
    await publish_covered(redis, publisher, [trade("AAPL", 100.0)])
    service = ExecutionService(settings)
    async with running(service, settings=settings) as [runtime]:
        await eventually(lambda: _counter(runtime, "orders_filled", 1), what="the entry filled")
        await publisher.publish(keys.TICKS, [(trade("AAPL", 90.0, seconds=2), None)])  # not covered yet
        await asyncio.sleep(1)
        assert runtime.ctx.counters["exits"] == 0, "acted on a tick the strategy had not covered"
        await eventually(lambda: _counter(runtime, "ticks_uncovered", 1), within=20, what="the overdue tick")
        await eventually(lambda: _counter(runtime, "exits", 1), what="the stop-loss exit")
    [_, exit_order] = [wire.decode(fields) for _, fields in await redis.xrange(keys.ORDERS)]
    assert exit_order.signal_id == f"exit:{signal(1).id}"
    assert exit_order.reason == "stop-loss: trade 90 at or below stop 99.0495"
    assert Portfolio.model_validate_json(await redis.get(keys.PORTFOLIO)).quantity("AAPL") == 0


async def _counter(runtime, name: str, at_least: int) -> bool:
    return runtime.ctx.counters[name] >= at_least
