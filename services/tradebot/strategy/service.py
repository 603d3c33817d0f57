"""The strategy service: reads ticks through the `strategy` group, publishes signals."""

from __future__ import annotations

import logging

from tradebot.common import keys
from tradebot.common.models import PriceTick, TradeSignal
from tradebot.common.service import ServiceContext
from tradebot.common.settings import Settings
from tradebot.common.telemetry import traced
from tradebot.strategy.base import Strategy
from tradebot.strategy.registry import build_strategies

log = logging.getLogger(__name__)


class StrategyService:
    service_id = "strategy"

    def __init__(self, settings: Settings, strategies: list[Strategy] | None = None) -> None:
        self.strategies = strategies if strategies is not None else build_strategies(settings)

    def evaluate(self, tick: PriceTick, traceparent: str | None) -> list[tuple[TradeSignal, str | None]]:
        signals = []
        with traced(__name__, "evaluate tick", traceparent, symbol=tick.symbol) as tp:
            for strategy in self.strategies:
                signal = strategy.on_tick(tick)
                if signal is not None:
                    signals.append((signal, tp))
        return signals

    async def run(self, ctx: ServiceContext) -> None:
        consumer = ctx.consumer([keys.TICKS])
        publisher = ctx.publisher()
        await consumer.setup()
        ctx.ready = True
        log.info("evaluating ticks", extra={"strategies": [s.name for s in self.strategies]})
        while not ctx.stopping.is_set():
            ctx.progressed()
            deliveries = await consumer.read()
            if not deliveries:
                continue
            signals = []
            for delivery in deliveries:
                signals.extend(self.evaluate(delivery.message, delivery.traceparent))
            await publisher.publish(keys.SIGNALS, signals)
            await consumer.ack(deliveries)
            ctx.counters["ticks_consumed"] += len(deliveries)
            ctx.handled_batch(len(deliveries))
            ctx.counters["signals_published"] += len(signals)
