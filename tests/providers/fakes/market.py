"""A deterministic market behind the fake providers: history on demand, plus a live tape.

Historical trades exist every `trade_every_ms` (id = time // trade_every_ms) and
bars every minute, computed from the time alone, so any range can be served
without storing it. Live trades (started with `start_live`) are recorded as they
are made, whether or not anyone is connected: that is what lets a test check
that a gap in the WebSocket is filled from REST with exactly the missed trades.
"""

from __future__ import annotations

import asyncio
import math
import time
import zlib
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass

MINUTE_MS = 60_000
LIVE_ID_BASE = 10**12  # live trade ids never collide with historical ones


@dataclass(frozen=True, slots=True)
class Trade:
    symbol: str
    time_ms: int
    price: float
    size: int
    id: int


@dataclass(frozen=True, slots=True)
class MinuteBar:
    symbol: str
    time_ms: int
    open: float
    high: float
    low: float
    close: float
    volume: int
    trades: int


def price_at(symbol: str, time_ms: int) -> float:
    base = 20 + zlib.crc32(symbol.encode()) % 400
    return round(base * (1 + 0.01 * math.sin(time_ms / 3_600_000)), 4)


class FakeMarket:
    def __init__(self, symbols: list[str], trade_every_ms: int = 10_000) -> None:
        self.symbols = symbols
        self.trade_every_ms = trade_every_ms
        self.live_since_ms: int | None = None
        self.live: dict[str, list[Trade]] = defaultdict(list)
        self.listeners: list[Callable[[str, Trade], None]] = []
        self._next_id = LIVE_ID_BASE
        self._task: asyncio.Task | None = None

    # History ---------------------------------------------------------------------------------
    def trades(self, symbol: str, start_ms: int, end_ms: int) -> list[Trade]:
        """Trades in [start_ms, end_ms), oldest first."""
        cutoff = end_ms if self.live_since_ms is None else min(end_ms, self.live_since_ms)
        step = self.trade_every_ms
        first = -(-start_ms // step) * step
        made = [
            Trade(symbol, t, price_at(symbol, t), 100 + (t // step) % 7, t // step)
            for t in range(first, cutoff, step)
        ]
        recorded = [trade for trade in self.live.get(symbol, ()) if start_ms <= trade.time_ms < end_ms]
        return made + recorded

    def bars(self, symbol: str, start_ms: int, end_ms: int) -> list[MinuteBar]:
        first = -(-start_ms // MINUTE_MS) * MINUTE_MS
        bars = []
        for t in range(first, end_ms, MINUTE_MS):
            prices = [price_at(symbol, t + offset) for offset in (0, 20_000, 40_000, 59_000)]
            bars.append(MinuteBar(symbol, t, prices[0], max(prices), min(prices), prices[-1], 600, 6))
        return bars

    # Live ------------------------------------------------------------------------------------
    def start_live(self, interval: float) -> None:
        self.live_since_ms = int(time.time() * 1000)
        self._task = asyncio.get_running_loop().create_task(self._tape(interval))

    async def stop_live(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    async def _tape(self, interval: float) -> None:
        while True:
            now_ms = int(time.time() * 1000)
            for symbol in self.symbols:
                self._next_id += 1
                trade = Trade(symbol, now_ms, price_at(symbol, now_ms), 10, self._next_id)
                self.live[symbol].append(trade)
                for listener in list(self.listeners):
                    listener(symbol, trade)
            await asyncio.sleep(interval)
