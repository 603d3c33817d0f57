"""What the routes share: the app's state, and request parameters checked once."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Path, Query, Request
from redis.asyncio import Redis

from tradebot.api.models import Problem
from tradebot.api.ranges import RequestProblem
from tradebot.api.sources import SourceCatalog, SourceTables, UnknownName
from tradebot.api.store import HistoryStore
from tradebot.common.settings import Settings
from tradebot.common.symbols import normalise_symbol

NOT_FOUND = {404: {"model": Problem, "description": "unknown source, symbol or service (named)"}}


@dataclass
class ApiState:
    settings: Settings
    catalog: SourceCatalog
    store: HistoryStore
    redis: Redis


def api_state(request: Request) -> ApiState:
    return request.app.state.api


State = Annotated[ApiState, Depends(api_state)]


async def source_tables(
    state: State, source: Annotated[str, Path(description="data source, e.g. synthetic", max_length=64)]
) -> SourceTables:
    return await state.catalog.get(source)


Source = Annotated[SourceTables, Depends(source_tables)]


async def known_symbol(
    state: State, tables: Source, symbol: Annotated[str, Path(description="ticker, e.g. AAPL", max_length=32)]
) -> str:
    """A symbol that has ticks in this source; anything else (malformed too) is a 404 naming it."""
    try:
        normalised = normalise_symbol(symbol)
    except ValueError:
        raise UnknownName(f"unknown symbol {symbol!r} for source {tables.source!r}") from None
    await state.store.require_symbol(tables, normalised)
    return normalised


KnownSymbol = Annotated[str, Depends(known_symbol)]


def symbol_filter(
    symbol: Annotated[str | None, Query(description="only this symbol", max_length=32)] = None,
) -> str | None:
    if symbol is None:
        return None
    try:
        return normalise_symbol(symbol)
    except ValueError as error:
        raise RequestProblem(str(error), ("query", "symbol")) from None


SymbolFilter = Annotated[str | None, Depends(symbol_filter)]
