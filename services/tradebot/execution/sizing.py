"""How many shares an entry buys. Pure.

* `quantity`: ORDER_QUANTITY shares;
* `notional`: ORDER_NOTIONAL dollars' worth;
* `equity_pct`: ORDER_EQUITY_PCT percent of equity;
* `risk`: lose at most RISK_PER_TRADE_PCT percent of equity if the stop is hit
  (shares = risk / stop distance; the distance is STOP_LOSS_ATR ATRs, or
  STOP_LOSS_PCT of the price).

Whole shares, never more than the risk limits and the cash allow.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from tradebot.common.settings import SizingMode


@dataclass(frozen=True)
class Sizing:
    mode: SizingMode = "equity_pct"
    quantity: float = 10
    notional: float = 5_000
    equity_pct: float = 10.0
    risk_pct: float = 0.5

    def shares(self, price: float, equity: float, stop_distance: float | None) -> tuple[float, str | None]:
        """Shares wanted at `price` (before limits), or 0 and why none."""
        if self.mode == "quantity":
            return math.floor(self.quantity), None
        if self.mode == "notional":
            return math.floor(self.notional / price), None
        if self.mode == "equity_pct":
            return math.floor(equity * self.equity_pct / 100 / price), None
        if not stop_distance or stop_distance <= 0:
            return 0, "risk sizing needs a stop distance: set STOP_LOSS_ATR or STOP_LOSS_PCT"
        return math.floor(equity * self.risk_pct / 100 / stop_distance), None
