"""The paper-trading record: signals, orders, fills, positions and the account's P&L."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Query
from pydantic import BaseModel

from tradebot.api import queries
from tradebot.api.account import read_account
from tradebot.api.deps import End, Start, State, SymbolFilter
from tradebot.api.models import Account, Fill, Order, Position, Signal
from tradebot.api.ranges import EARLIEST, LATEST, MAX_ROWS, time_range

router = APIRouter(tags=["paper trading"])
Limit = Annotated[int, Query(ge=1, le=MAX_ROWS, description="rows, newest first")]


async def recent_rows(
    state: State,
    sql: str,
    model: type[BaseModel],
    symbol: str | None,
    start: datetime | None,
    end: datetime | None,
    limit: int,
) -> list:
    """Rows of one trading table in [start, end) (all time by default), newest first."""
    start, end = time_range(start or EARLIEST, end or LATEST, LATEST - EARLIEST, LATEST)
    return await state.store.recent(sql, model, symbol, start, end, limit)


@router.get("/signals", response_model=list[Signal], summary="Trade signals, newest first")
async def signals(
    state: State, symbol: SymbolFilter = None, start: Start = None, end: End = None, limit: Limit = 100
) -> list[Signal]:
    return await recent_rows(state, queries.RECENT_SIGNALS, Signal, symbol, start, end, limit)


@router.get("/orders", response_model=list[Order], summary="Paper orders, newest first")
async def orders(
    state: State, symbol: SymbolFilter = None, start: Start = None, end: End = None, limit: Limit = 100
) -> list[Order]:
    return await recent_rows(state, queries.RECENT_ORDERS, Order, symbol, start, end, limit)


@router.get("/fills", response_model=list[Fill], summary="Paper fills, newest first")
async def fills(
    state: State, symbol: SymbolFilter = None, start: Start = None, end: End = None, limit: Limit = 100
) -> list[Fill]:
    return await recent_rows(state, queries.RECENT_FILLS, Fill, symbol, start, end, limit)


@router.get("/positions", response_model=list[Position], summary="Stored positions by symbol")
async def positions(
    state: State, include_closed: Annotated[bool, Query(description="also positions now flat")] = False
) -> list[Position]:
    return await state.store.positions(include_closed)


@router.get("/account", response_model=Account, summary="Cash, equity, P&L and open positions, live")
async def account(state: State) -> Account:
    return await read_account(state.redis, state.settings.starting_cash)
