"""The paper execution service: one signal in, at most one order and fill out.

Each batch of signals is handled in one optimistic Redis transaction
(WATCH/MULTI) that publishes the orders, fills and positions, stores the updated
portfolio, records the signal ids as processed and acknowledges the entries. So a signal delivered twice —
redelivered or re-published — never trades twice, and a crash never leaves a
fill without its portfolio update.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from datetime import UTC, datetime

import redis.exceptions

from tradebot.common import keys
from tradebot.common.bus import Delivery
from tradebot.common.models import TradeSignal
from tradebot.common.service import ServiceContext
from tradebot.common.settings import Settings
from tradebot.common.telemetry import traced
from tradebot.execution.paper import TradingCosts, execute_signal
from tradebot.execution.portfolio import Portfolio, load_portfolio
from tradebot.execution.risk import RiskLimits

log = logging.getLogger(__name__)
PROCESSED_RETENTION_SECONDS = 7 * 24 * 3600


class ExecutionService:
    service_id = "execution"

    def __init__(self, settings: Settings) -> None:
        self.limits = RiskLimits.from_settings(settings)
        self.costs = TradingCosts(settings.slippage_bps, settings.fee_per_share, settings.min_fee)
        self.base_quantity = settings.order_quantity
        self.starting_cash = settings.starting_cash

    async def run(self, ctx: ServiceContext) -> None:
        self.consumer = ctx.consumer([keys.SIGNALS], count=500)
        self.publisher = ctx.publisher()
        await self.consumer.setup()
        ctx.ready = True
        next_trim = 0.0
        while not ctx.stopping.is_set():
            ctx.progressed()
            deliveries = await self.consumer.read()
            if deliveries:
                ctx.counters.update(await self.handle(deliveries))
                ctx.handled_batch(len(deliveries))
            if time.monotonic() >= next_trim:
                cutoff = time.time() - PROCESSED_RETENTION_SECONDS
                await ctx.redis.zremrangebyscore(keys.PROCESSED_SIGNALS, "-inf", cutoff)
                next_trim = time.monotonic() + 3600

    async def handle(self, deliveries: list[Delivery]) -> Counter:
        """Execute a batch of signals, each exactly once, in one optimistic transaction.

        Returns what happened, for the heartbeat counters.
        """
        async with self.consumer.redis.pipeline(transaction=True) as pipe:
            while True:
                try:
                    return await self._execute_batch(pipe, deliveries)
                except redis.exceptions.WatchError:
                    continue  # another replica changed the portfolio first: decide again

    async def _execute_batch(self, pipe, deliveries: list[Delivery]) -> Counter:
        await pipe.watch(keys.PORTFOLIO, keys.PROCESSED_SIGNALS)
        signals: list[TradeSignal] = [d.message for d in deliveries]  # type: ignore[misc]
        already_done = await pipe.zmscore(keys.PROCESSED_SIGNALS, [s.id for s in signals])
        portfolio = await load_portfolio(pipe, self.starting_cash)
        portfolio.mark(await self._latest_prices(pipe, portfolio))
        outcomes: Counter = Counter()
        executed: set[str] = set()
        pipe.multi()
        for delivery, signal, done in zip(deliveries, signals, already_done, strict=True):
            if done is not None or signal.id in executed:
                outcomes["duplicate_signals"] += 1
                log.info("duplicate signal ignored", extra={"signal": signal.id})
                continue
            executed.add(signal.id)
            with traced(__name__, "execute signal", delivery.traceparent, symbol=signal.symbol) as tp:
                result = execute_signal(
                    portfolio, signal, self.base_quantity, self.limits, self.costs, datetime.now(UTC)
                )
            self.publisher.add_to(pipe, keys.ORDERS, result.order, tp)
            if result.fill is not None and result.position is not None:
                self.publisher.add_to(pipe, keys.FILLS, result.fill, tp)
                self.publisher.add_to(pipe, keys.POSITIONS, result.position, tp)
                outcomes["orders_filled"] += 1
            else:
                outcomes["orders_rejected"] += 1
                log.info("order rejected", extra={"signal": signal.id, "reason": result.order.reason})
        if executed:
            pipe.set(keys.PORTFOLIO, portfolio.model_dump_json())
            pipe.zadd(keys.PROCESSED_SIGNALS, dict.fromkeys(executed, time.time()))
        pipe.xack(keys.SIGNALS, self.consumer.group, *(d.entry_id for d in deliveries))
        await pipe.execute()
        return outcomes

    @staticmethod
    async def _latest_prices(pipe, portfolio: Portfolio) -> dict[str, float]:
        return await keys.read_latest_prices(pipe, portfolio.open_positions())
