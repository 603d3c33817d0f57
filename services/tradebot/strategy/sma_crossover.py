"""Moving-average crossover: buy when the short SMA crosses above the long one, sell below."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

from tradebot.common.models import PriceTick, Side, TradeSignal
from tradebot.strategy.base import Strategy

FULL_STRENGTH_GAP = 0.002  # a 20 bp gap between the averages is a full-strength signal


@dataclass
class _Averages:
    short: deque = field(default_factory=deque)
    long: deque = field(default_factory=deque)
    short_sum: float = 0.0
    long_sum: float = 0.0
    above: bool | None = None


class SmaCrossover(Strategy):
    name = "sma_crossover"

    def __init__(self, short_window: int = 5, long_window: int = 20) -> None:
        if not 0 < short_window < long_window:
            raise ValueError("need 0 < short_window < long_window")
        self.short_window = short_window
        self.long_window = long_window
        self._state: dict[str, _Averages] = {}

    def on_tick(self, tick: PriceTick) -> TradeSignal | None:
        state = self._state.setdefault(tick.symbol, _Averages())
        short_sma = _push(state, "short", tick.price, self.short_window)
        long_sma = _push(state, "long", tick.price, self.long_window)
        if long_sma is None or short_sma is None or short_sma == long_sma:
            return None  # not warmed up, or touching: no side to compare yet
        above = short_sma > long_sma
        crossed = state.above is not None and above != state.above
        state.above = above
        if not crossed:
            return None
        gap = abs(short_sma - long_sma) / long_sma
        side = Side.BUY if above else Side.SELL
        direction = "above" if above else "below"
        reason = (
            f"SMA({self.short_window}) {short_sma:.4f} crossed {direction} "
            f"SMA({self.long_window}) {long_sma:.4f}"
        )
        return self.signal(tick, side, gap / FULL_STRENGTH_GAP, reason)


def _push(state: _Averages, which: str, price: float, window: int) -> float | None:
    """Append a price to a running window; the window's mean once it is full."""
    values: deque = getattr(state, which)
    total = getattr(state, f"{which}_sum") + price
    values.append(price)
    if len(values) > window:
        total -= values.popleft()
    setattr(state, f"{which}_sum", total)
    return total / window if len(values) == window else None
