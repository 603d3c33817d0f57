"""A signal delivered twice — re-published or redelivered after a crash — trades once."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from support.services import eventually, running
from tradebot.common import bus, keys, wire
from tradebot.common.models import Side, TradeSignal
from tradebot.execution.portfolio import Portfolio
from tradebot.execution.service import ExecutionService

pytestmark = pytest.mark.integration


def signal(n: int, side: Side = Side.BUY) -> TradeSignal:
    now = datetime.now(UTC)
    return TradeSignal(
        id=f"sma_crossover:synthetic:tick-{n}", time=now, strategy="sma_crossover", symbol="AAPL",
        side=side, strength=1.0, reason="test", price=100.0, source="synthetic", tick_id=f"tick-{n}",
        tick_time=now,
    )  # fmt: skip


async def test_republished_and_redelivered_signals_trade_once(make_settings, redis):
    settings = make_settings(claim_idle_seconds=0.5)
    publisher = bus.Publisher(redis, settings.stream_maxlen)
    # A consumer of the execution group took signal 1 and died before acknowledging it.
    await redis.xgroup_create(keys.SIGNALS, "execution", id="0", mkstream=True)
    await publisher.publish(keys.SIGNALS, [(signal(1), None)])
    taken = await redis.xreadgroup("execution", "execution-crashed-pod", {keys.SIGNALS: ">"}, count=10)
    assert len(taken[0][1]) == 1
    # The same signal is also re-published (an upstream replay), and a second distinct signal follows.
    await publisher.publish(keys.SIGNALS, [(signal(1), None), (signal(1), None), (signal(2), None)])

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
    assert sorted(o.signal_id for o in orders) == [signal(1).id, signal(2).id]
    assert len(fills) == 2
    portfolio = Portfolio.model_validate_json(await redis.get(keys.PORTFOLIO))
    assert portfolio.quantity("AAPL") == 20 and portfolio.orders_filled == 2
