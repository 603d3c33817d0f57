"""A synthetic market: geometric random walks with realistic spreads, sizes and volume.

Pure and seedable, so strategies and tests can replay the same market.
"""

from __future__ import annotations

import math
import random
import zlib
from dataclasses import dataclass
from datetime import datetime

from tradebot.common.models import PriceTick

# Roughly where these traded recently, so the dashboard looks familiar.
REFERENCE_PRICES = {
    "AAPL": 220.0, "MSFT": 430.0, "AMZN": 185.0, "GOOG": 170.0, "GOOGL": 168.0, "TSLA": 250.0,
    "NVDA": 120.0, "META": 520.0, "JPM": 205.0, "V": 275.0, "NFLX": 650.0, "AMD": 155.0,
}  # fmt: skip
ANNUAL_VOLATILITY = 0.35
TRADING_SECONDS_PER_YEAR = 252 * 6.5 * 3600


def reference_price(symbol: str) -> float:
    """A stable starting price: known ones from the table, others from the name's hash."""
    if symbol in REFERENCE_PRICES:
        return REFERENCE_PRICES[symbol]
    return 10.0 + zlib.crc32(symbol.encode()) % 49_000 / 100


@dataclass(slots=True)
class _SymbolState:
    price: float
    volume: float
    sequence: int


class SyntheticMarket:
    """Generates ticks round-robin across symbols; each tick moves its symbol's price."""

    def __init__(
        self,
        symbols: list[str],
        seconds_per_tick: float,
        source: str = "synthetic",
        seed: int | None = None,
        volatility: float = ANNUAL_VOLATILITY,
    ) -> None:
        if not symbols:
            raise ValueError("a synthetic market needs at least one symbol")
        self.symbols = symbols
        self.source = source
        self._random = random.Random(seed)
        self._states = [_SymbolState(reference_price(s), 0.0, 0) for s in symbols]
        # Volatility per tick of one symbol: each symbol ticks every seconds_per_tick.
        self._sigma = volatility * math.sqrt(seconds_per_tick / TRADING_SECONDS_PER_YEAR) * 4
        self._next = 0
        self._run_id = f"{self._random.getrandbits(40):010x}"

    def next_ticks(self, count: int, now: datetime) -> list[PriceTick]:
        ticks = []
        gauss, uniform = self._random.gauss, self._random.random
        for _ in range(count):
            index = self._next
            self._next = (index + 1) % len(self.symbols)
            state = self._states[index]
            state.price = max(0.01, state.price * math.exp(gauss(0.0, self._sigma)))
            spread = state.price * (0.0001 + 0.0004 * uniform())
            size = float(max(1, int(math.exp(gauss(4.0, 1.0)))))
            state.volume += size
            state.sequence += 1
            price = round(state.price, 4)
            ticks.append(
                PriceTick(
                    id=f"{self._run_id}-{index}-{state.sequence}",
                    source=self.source,
                    symbol=self.symbols[index],
                    time=now,
                    price=price,
                    size=size,
                    bid=round(price - spread / 2, 4),
                    ask=round(price + spread / 2, 4),
                    volume=state.volume,
                )
            )
        return ticks
