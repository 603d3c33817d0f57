"""The strategy interface: one class per strategy, pure, fed one tick at a time."""

from __future__ import annotations

from abc import ABC, abstractmethod

from tradebot.common.models import PriceTick, Side, TradeSignal


class Strategy(ABC):
    """Keeps per-symbol state and returns a signal when its rule fires.

    Implementations do no I/O, so they are tested by feeding prices.
    """

    name: str

    @abstractmethod
    def on_tick(self, tick: PriceTick) -> TradeSignal | None: ...

    def signal(self, tick: PriceTick, side: Side, strength: float, reason: str) -> TradeSignal:
        """A signal caused by `tick`; its id derives from the tick so a replay yields the same id."""
        return TradeSignal(
            id=f"{self.name}:{tick.source}:{tick.id}",
            time=tick.time,
            strategy=self.name,
            symbol=tick.symbol,
            side=side,
            strength=round(min(1.0, max(0.0, strength)), 4),
            reason=reason,
            price=tick.price,
            source=tick.source,
            tick_id=tick.id,
            tick_time=tick.time,
        )
