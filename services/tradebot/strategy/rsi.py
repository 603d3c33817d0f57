"""RSI mean reversion: buy when RSI falls into oversold, sell when it rises into overbought.

Wilder's smoothing; signals fire on entering a zone, not on every tick inside it.
"""

from __future__ import annotations

from dataclasses import dataclass

from tradebot.common.models import PriceTick, Side, TradeSignal
from tradebot.strategy.base import Strategy


@dataclass
class _RsiState:
    last_price: float | None = None
    average_gain: float = 0.0
    average_loss: float = 0.0
    samples: int = 0
    zone: str = "neutral"


def wilder_rsi(average_gain: float, average_loss: float) -> float:
    if average_loss == 0:
        return 100.0 if average_gain > 0 else 50.0
    return 100.0 - 100.0 / (1.0 + average_gain / average_loss)


class RsiMeanReversion(Strategy):
    name = "rsi"

    def __init__(self, period: int = 14, oversold: float = 30, overbought: float = 70) -> None:
        if period < 2 or not 0 < oversold < overbought < 100:
            raise ValueError("need period >= 2 and 0 < oversold < overbought < 100")
        self.period = period
        self.oversold = oversold
        self.overbought = overbought
        self._state: dict[str, _RsiState] = {}

    def on_tick(self, tick: PriceTick) -> TradeSignal | None:
        state = self._state.setdefault(tick.symbol, _RsiState())
        if state.last_price is None:
            state.last_price = tick.price
            return None
        change = tick.price - state.last_price
        state.last_price = tick.price
        gain, loss = max(change, 0.0), max(-change, 0.0)
        state.samples += 1
        if state.samples <= self.period:  # seed with a simple average of the first period
            state.average_gain += gain / self.period
            state.average_loss += loss / self.period
            if state.samples < self.period:
                return None
        else:
            state.average_gain = (state.average_gain * (self.period - 1) + gain) / self.period
            state.average_loss = (state.average_loss * (self.period - 1) + loss) / self.period
        rsi = wilder_rsi(state.average_gain, state.average_loss)
        zone = "oversold" if rsi <= self.oversold else "overbought" if rsi >= self.overbought else "neutral"
        entered = zone != state.zone
        state.zone = zone
        if not entered or zone == "neutral":
            return None
        if zone == "oversold":
            strength = (self.oversold - rsi) / self.oversold + 0.5
            return self.signal(tick, Side.BUY, strength, f"RSI({self.period}) {rsi:.1f} <= {self.oversold:g}")
        strength = (rsi - self.overbought) / (100 - self.overbought) + 0.5
        return self.signal(tick, Side.SELL, strength, f"RSI({self.period}) {rsi:.1f} >= {self.overbought:g}")
