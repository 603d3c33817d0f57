"""One event loop over ticks: the live strategy runner feeding the live paper broker. Pure.

The live services split this loop across processes (strategy replicas, execution)
and keep its order with the strategy's progress watermark; here it runs in one
place on a simulated clock (the ticks' own times). Per tick: the strategies see it
first (a bar it closes may signal), the broker accepts their signals, then the
broker sees the tick (exits, then queued orders — which fill only on a later trade
than their signal's tick). Same ticks, same signals, orders and fills as live.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime

from tradebot.common.models import Message, PriceTick, TradeSignal
from tradebot.execution.paper import Execution, PaperBroker
from tradebot.execution.portfolio import Portfolio
from tradebot.strategy.bars import epoch_us
from tradebot.strategy.base import Strategy
from tradebot.strategy.runner import StrategyRunner


@dataclass
class Simulation:
    strategies: list[Strategy]
    broker: PaperBroker
    portfolio: Portfolio
    grace_seconds: float = 5.0

    def __post_init__(self) -> None:
        self.runner = StrategyRunner(self.strategies, self.grace_seconds)

    def step(self, tick: PriceTick) -> tuple[list[TradeSignal], list[Execution]]:
        signals = self.runner.on_tick(tick)
        executions = self._accept(signals)
        executions.extend(self.broker.on_tick(self.portfolio, tick))
        return signals, executions

    def finish(self) -> tuple[list[TradeSignal], list[Execution]]:
        """Close the last bars; their signals queue orders that no later trade will fill."""
        signals = self.runner.finish()
        return signals, self._accept(signals)

    def finish_until(self, end: datetime) -> tuple[list[TradeSignal], list[Execution]]:
        """At the end of the data: close the bars that end by `end` (they are complete)."""
        signals = self.runner.close_until(epoch_us(end))
        return signals, self._accept(signals)

    def _accept(self, signals: list[TradeSignal]) -> list[Execution]:
        found = (self.broker.accept(self.portfolio, signal) for signal in signals)
        return [execution for execution in found if execution is not None]

    def messages(self, ticks: Iterable[PriceTick]) -> Iterator[Message]:
        """Every signal, order, fill and position the ticks cause, in order."""
        for tick in ticks:
            yield from self.messages_of(tick)
        yield from self._flatten(*self.finish())

    def messages_of(self, tick: PriceTick) -> Iterator[Message]:
        """What one tick causes: signals, then orders with their fills and positions."""
        yield from self._flatten(*self.step(tick))

    @staticmethod
    def _flatten(signals: list[TradeSignal], executions: list[Execution]) -> Iterator[Message]:
        yield from signals
        for execution in executions:
            yield execution.order
            if execution.fill is not None and execution.position is not None:
                yield execution.fill
                yield execution.position
