"""A synthetic market: geometric random walks with realistic spreads, sizes and volume.

Pure and seedable, so strategies and tests can replay the same market. Ticks are
drawn a batch at a time with numpy, so the feed is never the slow stage.
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Mapping
from datetime import UTC, datetime

import numpy as np

from tradebot.common.models import InvalidMessage, PriceTick

# Roughly where these traded recently, so the dashboard looks familiar.
REFERENCE_PRICES = {
    "AAPL": 220.0, "MSFT": 430.0, "AMZN": 185.0, "GOOG": 170.0, "GOOGL": 168.0, "TSLA": 250.0,
    "NVDA": 120.0, "META": 520.0, "JPM": 205.0, "V": 275.0, "NFLX": 650.0, "AMD": 155.0,
}  # fmt: skip
ANNUAL_VOLATILITY = 0.35
TRADING_SECONDS_PER_YEAR = 252 * 6.5 * 3600
MIN_PRICE = 0.01


def reference_price(symbol: str) -> float:
    """A stable starting price: known ones from the table, others from the name's hash."""
    if symbol in REFERENCE_PRICES:
        return REFERENCE_PRICES[symbol]
    return 10.0 + zlib.crc32(symbol.encode()) % 49_000 / 100


class SyntheticMarket:
    """Generates ticks round-robin across symbols; each tick moves its symbol's price.

    `start` continues each symbol from its last tick (price and running volume), so a
    restarted feed carries on where the market was instead of jumping back to the
    reference prices.
    """

    def __init__(
        self,
        symbols: list[str],
        seconds_per_tick: float,
        source: str = "synthetic",
        seed: int | None = None,
        volatility: float = ANNUAL_VOLATILITY,
        start: Mapping[str, PriceTick] | None = None,
    ) -> None:
        if not symbols:
            raise ValueError("a synthetic market needs at least one symbol")
        start = start or {}
        self.symbols = symbols
        self.source = source
        for symbol in symbols:  # the text checks, once per symbol; numbers are checked per batch
            PriceTick(source=source, symbol=symbol, time=datetime.now(UTC), price=1.0)
        self._random = np.random.default_rng(seed)
        self._log_prices = np.log([start[s].price if s in start else reference_price(s) for s in symbols])
        self._volumes = np.array([start[s].volume if s in start else 0.0 for s in symbols])
        self._sequences = np.zeros(len(symbols), dtype=np.int64)
        # Volatility per tick of one symbol: each symbol ticks every seconds_per_tick.
        self._sigma = volatility * math.sqrt(seconds_per_tick / TRADING_SECONDS_PER_YEAR) * 4
        self._next = 0
        self._run_id = f"{int(self._random.integers(1 << 40)):010x}"

    def next_ticks(self, count: int, now: datetime) -> list[PriceTick]:
        if count <= 0:
            return []
        draw = self._random
        symbols = (self._next + np.arange(count)) % len(self.symbols)
        log_prices = self._walk(self._log_prices, draw.normal(0.0, self._sigma, count))
        sizes = np.maximum(1, np.exp(draw.normal(4.0, 1.0, count)).astype(np.int64)).astype(float)
        volumes = self._walk(self._volumes, sizes)
        sequences = self._walk(self._sequences, np.ones(count, dtype=np.int64))
        prices = np.maximum(MIN_PRICE, np.round(np.exp(log_prices), 4))
        half_spreads = prices * (0.0001 + 0.0004 * draw.random(count)) / 2
        bids, asks = np.round(prices - half_spreads, 4), np.round(prices + half_spreads, 4)
        if not (np.isfinite(prices).all() and np.isfinite(volumes).all() and (bids >= 0).all()):
            raise InvalidMessage("the synthetic walk left the finite, positive numbers")
        self._next = (self._next + count) % len(self.symbols)
        run, source, names, make = self._run_id, self.source, self.symbols, PriceTick.prechecked
        return [
            make(
                id=f"{run}-{index}-{sequence}",
                source=source,
                symbol=names[index],
                time=now,
                price=price,
                size=size,
                bid=bid,
                ask=ask,
                volume=volume,
            )
            for index, sequence, price, size, bid, ask, volume in zip(
                symbols.tolist(), sequences.tolist(), prices.tolist(), sizes.tolist(),
                bids.tolist(), asks.tolist(), volumes.tolist(), strict=True,
            )
        ]  # fmt: skip

    def _walk(self, state: np.ndarray, steps: np.ndarray) -> np.ndarray:
        """Each tick's running total of its symbol's steps, from `state`, which is advanced.

        The ticks go round-robin, so laid out in rows of one tick per symbol, a symbol's
        ticks form a column: its running total is that column's cumulative sum.
        """
        width, offset = len(self.symbols), self._next
        rows = -(-(offset + len(steps)) // width)
        grid = np.zeros(rows * width, dtype=steps.dtype)
        grid[offset : offset + len(steps)] = steps
        totals = grid.reshape(rows, width).cumsum(axis=0) + state
        state[:] = totals[-1]
        return totals.ravel()[offset : offset + len(steps)]
