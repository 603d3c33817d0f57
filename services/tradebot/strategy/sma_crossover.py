"""Moving-average crossover: buy when the short SMA crosses above the long one, sell below."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

from tradebot.common.models import PriceTick, Side, TradeSignal
from tradebot.strategy.base import Strategy

FULL_STRENGTH_GAP = 0.002  # a 20 bp gap between the averages is a full-strength signal


class RollingMean:
    """The mean of the last `window` values, updated in O(1)."""

    __slots__ = ("total", "values", "window")

    def __init__(self, window: int) -> None:
        self.window = window
        self.values: deque[float] = deque()
        self.total = 0.0

    def push(self, value: float) -> float | None:
        """Add a value; the mean once the window is full, else None."""
        self.values.append(value)
        self.total += value
        if len(self.values) > self.window:
            self.total -= self.values.popleft()
        return self.total / self.window if len(self.values) == self.window else None


@dataclass
class _Averages:
    short: RollingMean
    long: RollingMean
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
        state = self._state.get(tick.symbol)
        if state is None:
            state = self._state[tick.symbol] = _Averages(
                RollingMean(self.short_window), RollingMean(self.long_window)
            )
        short_sma = state.short.push(tick.price)
        long_sma = state.long.push(tick.price)
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
