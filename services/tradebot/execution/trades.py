"""Round trips (closed trades) from orders and fills, and performance per symbol or strategy. Pure.

One pairing for live trading (the API over the stored fills) and backtests: the
account is long only with one position per symbol, so a sell closes the position
the symbol's last buy opened. A buy left open by an account reset is replaced by
the next buy of the symbol.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from tradebot.backtest.metrics import RoundTrip, finite, profit_factor, win_rate
from tradebot.common.models import Fill, Order, Side


class TradeBook:
    """Pairs each entry fill with the exit that closes it: the round trips."""

    def __init__(self) -> None:
        self.open: dict[str, tuple[Order, Fill]] = {}

    def add(self, order: Order, fill: Fill) -> RoundTrip | None:
        if fill.side is Side.BUY:
            self.open[fill.symbol] = (order, fill)
            return None
        entry = self.open.pop(fill.symbol, None)
        if entry is None:
            return None
        entry_order, entry_fill = entry
        pnl = (fill.price - entry_fill.price) * fill.quantity - fill.fee - entry_fill.fee
        return RoundTrip(
            fill.symbol, entry_order.strategy, entry_fill.time.isoformat(), entry_fill.price,
            fill.time.isoformat(), fill.price, fill.quantity, round(pnl, 4),
            round(fill.fee + entry_fill.fee, 4), exit_reason(order),
        )  # fmt: skip


def exit_reason(order: Order) -> str:
    """What closed a position: an exit rule (stop-loss...), an operator, or the strategy's sell."""
    if not order.reason:
        return "sell signal"
    head = order.reason.split(":")[0]
    operator, by, _ = head.partition(" by operator")
    return operator + by if by else head  # without the actor (the audit table names who)


def closed_trades(fills: Iterable[tuple[Order, Fill]], book: TradeBook | None = None) -> list[RoundTrip]:
    """The round trips of fills (with their orders) in time order; pass `book` to carry on from
    the positions an earlier call left open."""
    book = book if book is not None else TradeBook()
    return [trade for order, fill in fills if (trade := book.add(order, fill)) is not None]


@dataclass(frozen=True)
class Performance:
    name: str
    trades: int
    wins: int
    win_rate_pct: float | None
    pnl: float
    fees: float
    profit_factor: float | None
    average_pnl: float


def performance_by(trades: Iterable[RoundTrip], key: Callable[[RoundTrip], str]) -> list[Performance]:
    """Trades, win rate, P&L (after fees), fees and profit factor per group, best P&L first."""
    groups: dict[str, list[RoundTrip]] = defaultdict(list)
    for trade in trades:
        groups[key(trade)].append(trade)
    found = [
        Performance(
            name=name, trades=len(ts), wins=sum(t.pnl > 0 for t in ts),
            win_rate_pct=finite(win_rate(ts) * 100, 2), pnl=round(math.fsum(t.pnl for t in ts), 4),
            fees=round(math.fsum(t.fees for t in ts), 4), profit_factor=finite(profit_factor(ts)),
            average_pnl=round(math.fsum(t.pnl for t in ts) / len(ts), 4),
        )
        for name, ts in groups.items()
    ]  # fmt: skip
    return sorted(found, key=lambda p: (-p.pnl, p.name))
