"""How the paper account is doing: its equity curve, closed trades, and performance per symbol
and strategy, from the stored equity snapshots, fills and orders."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Query

from tradebot.api.deps import End, Start, State, SymbolFilter
from tradebot.api.models import ClosedTrade, EquityPoint, Performance, PerformanceRow
from tradebot.api.ranges import EARLIEST, LATEST, MAX_ROWS, as_utc
from tradebot.backtest.metrics import RoundTrip, drawdowns
from tradebot.execution.trades import performance_by

router = APIRouter(tags=["performance"])


def _range(start: datetime | None, end: datetime | None) -> tuple[datetime, datetime]:
    """Unbounded where not given; extreme times clamped as every route does (as_utc)."""
    return as_utc(start) if start else EARLIEST, as_utc(end) if end else LATEST


@router.get("/equity", response_model=list[EquityPoint], summary="Equity snapshots with their drawdown")
async def equity(
    state: State, start: Start = None, end: End = None,
    limit: Annotated[int, Query(ge=1, le=MAX_ROWS, description="the newest snapshots")] = 5_000,
) -> list[EquityPoint]:  # fmt: skip
    rows = await state.store.equity(*_range(start, end), limit)
    falls = drawdowns([row["equity"] for row in rows])
    return [
        EquityPoint(**row, drawdown_pct=round(fall * 100, 4)) for row, fall in zip(rows, falls, strict=True)
    ]


async def _trades(state: State, start: datetime | None, end: datetime | None) -> list[RoundTrip]:
    """The round trips that closed in [start, end) (paired over all stored fills)."""
    trades = await state.ledger.closed_trades()
    if start is None and end is None:
        return trades
    begin, finish = _range(start, end)
    return [t for t in trades if begin <= datetime.fromisoformat(t.exit_time) < finish]


def closed_trade(trade: RoundTrip) -> ClosedTrade:
    entry, exit_ = datetime.fromisoformat(trade.entry_time), datetime.fromisoformat(trade.exit_time)
    return ClosedTrade(
        symbol=trade.symbol, strategy=trade.strategy, entry_time=entry, entry_price=trade.entry_price,
        exit_time=exit_, exit_price=trade.exit_price, quantity=trade.quantity, pnl=trade.pnl, fees=trade.fees,
        holding_seconds=(exit_ - entry).total_seconds(), exit_reason=trade.exit_reason,
    )  # fmt: skip


@router.get("/trades", response_model=list[ClosedTrade], summary="Closed trades, newest exit first")
async def trades(
    state: State, symbol: SymbolFilter = None, start: Start = None, end: End = None,
    limit: Annotated[int, Query(ge=1, le=MAX_ROWS, description="rows, newest first")] = 100,
) -> list[ClosedTrade]:  # fmt: skip
    found = [t for t in await _trades(state, start, end) if symbol is None or t.symbol == symbol]
    return [closed_trade(t) for t in reversed(found[-limit:])]


@router.get(
    "/performance",
    response_model=Performance,
    summary="Trades, win rate, P&L and fees per symbol and strategy",
)
async def performance(state: State, start: Start = None, end: End = None) -> Performance:
    found = await _trades(state, start, end)
    if start is None and end is None:
        by_symbol, by_strategy = await state.ledger.performance()
    else:
        by_symbol, by_strategy = (
            performance_by(found, lambda t: t.symbol),
            performance_by(found, lambda t: t.strategy),
        )
    return Performance(
        trades=len(found), pnl=round(sum(t.pnl for t in found), 4),
        by_symbol=[PerformanceRow(**vars(p)) for p in by_symbol],
        by_strategy=[PerformanceRow(**vars(p)) for p in by_strategy],
    )  # fmt: skip
