"""Exit levels of a position and the check run on every trade of its symbol. Pure.

A stop-loss sits `stop_loss_atr` ATRs below the entry when the signal carried an
ATR (else `stop_loss_pct` below it); a take-profit `take_profit_pct` above; a
trailing stop `trailing_stop_pct` below the highest trade since the entry. Zero
turns a rule off.
"""

from __future__ import annotations

from dataclasses import dataclass

from tradebot.execution.portfolio import Holding


@dataclass(frozen=True)
class ExitRules:
    stop_loss_pct: float = 0.0
    stop_loss_atr: float = 0.0
    take_profit_pct: float = 0.0
    trailing_stop_pct: float = 0.0

    def stop_distance(self, entry: float, atr: float | None) -> float | None:
        """Price distance from the entry to the stop, or None without a stop rule."""
        if self.stop_loss_atr > 0 and atr:
            return self.stop_loss_atr * atr
        if self.stop_loss_pct > 0:
            return entry * self.stop_loss_pct / 100
        return None

    def arm(self, holding: Holding, entry: float, atr: float | None) -> None:
        """Set the levels of a position just opened at `entry`."""
        distance = self.stop_distance(entry, atr)
        holding.stop_price = round(entry - distance, 6) if distance is not None else None
        tp = self.take_profit_pct
        holding.take_profit_price = round(entry * (1 + tp / 100), 6) if tp > 0 else None
        holding.trail_high = entry if self.trailing_stop_pct > 0 else None

    def check(self, holding: Holding, price: float) -> str | None:
        """After a trade at `price`: the reason to exit now, or None (raises the trailing high)."""
        if holding.stop_price is not None and price <= holding.stop_price:
            return f"stop-loss: trade {price:g} at or below stop {holding.stop_price:g}"
        if holding.take_profit_price is not None and price >= holding.take_profit_price:
            return f"take-profit: trade {price:g} at or above target {holding.take_profit_price:g}"
        if holding.trail_high is not None:
            if price > holding.trail_high:
                holding.trail_high = price
            trigger = holding.trail_high * (1 - self.trailing_stop_pct / 100)
            if price <= trigger:
                return (
                    f"trailing stop: trade {price:g} is {self.trailing_stop_pct:g}% below "
                    f"the high {holding.trail_high:g} since entry"
                )
        return None
