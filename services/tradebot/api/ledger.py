"""The closed trades of the stored fills, kept up to date incrementally.

Pairing every stored fill on each request cost 1.5 s at 100,000 fills (bench/dashboard.py
--page); the ledger pairs each fill once, reading only the fills stored after the last
one it saw, in (time, id) order, so a request costs what arrived since the previous one.
The performance tables over all of them are kept until another trade closes.
"""

from __future__ import annotations

import asyncio
from datetime import datetime

from tradebot.api.ranges import EARLIEST
from tradebot.api.store import HistoryStore
from tradebot.backtest.metrics import RoundTrip
from tradebot.execution.trades import Performance, TradeBook, closed_trades, performance_by


class TradeLedger:
    def __init__(self, store: HistoryStore) -> None:
        self.store = store
        self.book = TradeBook()
        self.trades: list[RoundTrip] = []
        self.after: tuple[datetime, str] = (EARLIEST, "")
        self._lock = asyncio.Lock()
        self._performance: tuple[int, list[Performance], list[Performance]] | None = None

    async def closed_trades(self) -> list[RoundTrip]:
        """Every round trip of the stored fills so far, oldest exit first."""
        async with self._lock:
            fills = await self.store.fills_with_orders(*self.after)
            self.trades += closed_trades(fills, self.book)
            if fills:
                self.after = (fills[-1][1].time, fills[-1][1].id)
            return self.trades

    async def performance(self) -> tuple[list[Performance], list[Performance]]:
        """Per symbol and per strategy over every closed trade, computed again only when one closed."""
        trades = await self.closed_trades()
        if self._performance is None or self._performance[0] != len(trades):
            by_symbol = performance_by(trades, lambda t: t.symbol)
            self._performance = (len(trades), by_symbol, performance_by(trades, lambda t: t.strategy))
        return self._performance[1], self._performance[2]
