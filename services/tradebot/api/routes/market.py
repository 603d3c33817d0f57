"""Market history: data sources, symbols, raw ticks, bars, latest prices and the market summary."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Query
from fastapi.responses import Response
from pydantic import WithJsonSchema

from tradebot.api.deps import NOT_FOUND, End, KnownSymbol, Source, Start, State, Tickers, tickers
from tradebot.api.models import (
    BarSeries,
    Interval,
    LatestPrices,
    MarketSummary,
    SourceStats,
    SymbolList,
    TickPage,
)
from tradebot.api.movers import movers
from tradebot.api.ranges import (
    CURSOR_PATTERN,
    MAX_BARS,
    MAX_TICKS_PER_PAGE,
    bar_range,
    decode_cursor,
    time_range,
)
from tradebot.api.sources import UnknownName

router = APIRouter(tags=["market data"], responses=NOT_FOUND)


def json_of(body: dict[str, Any]) -> Response:
    """A large answer of plain rows, serialised in one pass; the route's response_model documents it."""
    return Response(orjson.dumps(body, option=orjson.OPT_UTC_Z), media_type="application/json")


Cursor = Annotated[str, WithJsonSchema({"type": "string", "pattern": CURSOR_PATTERN})]


def now() -> datetime:
    return datetime.now(UTC)


@router.get("/sources", response_model=list[SourceStats], summary="Data sources and their table stats")
async def list_sources(state: State) -> list[SourceStats]:
    return [await state.store.source_stats(tables) for tables in (await state.catalog.all()).values()]


@router.get("/sources/{source}", response_model=SourceStats, summary="One data source's table stats")
async def get_source(state: State, tables: Source) -> SourceStats:
    return await state.store.source_stats(tables)


@router.get("/sources/{source}/symbols", response_model=SymbolList, summary="Symbols with ticks")
async def list_symbols(state: State, tables: Source) -> SymbolList:
    return SymbolList(source=tables.source, symbols=await state.store.symbols(tables))


@router.get(
    "/sources/{source}/symbols/{symbol}/ticks",
    response_model=TickPage,
    summary="Raw ticks over a time range, oldest first, in pages",
)
async def get_ticks(
    state: State,
    tables: Source,
    symbol: KnownSymbol,
    start: Start = None,
    end: End = None,
    limit: Annotated[int, Query(ge=1, le=MAX_TICKS_PER_PAGE, description="ticks per page")] = 1_000,
    cursor: Annotated[Cursor | None, Query(description="the previous page's next_cursor")] = None,
) -> Response:
    start, end = time_range(start, end, timedelta(days=1), now())
    after = decode_cursor(cursor) if cursor else None
    ticks, next_cursor = await state.store.ticks_page(tables, symbol, start, end, after, limit)
    return json_of({"source": tables.source, "symbol": symbol, "ticks": ticks, "next_cursor": next_cursor})


@router.get(
    "/sources/{source}/symbols/{symbol}/bars",
    response_model=BarSeries,
    summary="OHLCV bars at 1m/5m/15m/1h/1d over a time range",
    description=f"At most {MAX_BARS:,} bars, the newest of the range: the answer's `start` says where "
    "they begin (ask again with that as `end` for earlier ones). A bucket that `start` falls in is "
    "served whole.",
)
async def get_bars(
    state: State,
    tables: Source,
    symbol: KnownSymbol,
    interval: Annotated[Interval, Query(description="bar width")] = Interval.M1,
    start: Start = None,
    end: End = None,
) -> Response:
    start, end = bar_range(start, end, interval, now())
    bars = await state.store.bars(tables, symbol, interval, start, end) if start < end else []
    series = {"source": tables.source, "symbol": symbol, "interval": interval, "start": start, "end": end}
    return json_of({**series, "bars": bars})


@router.get(
    "/sources/{source}/prices/latest", response_model=LatestPrices, summary="The latest tick of each symbol"
)
async def latest_prices(
    state: State,
    tables: Source,
    symbols: Annotated[
        Tickers | None, Query(description="comma-separated, e.g. AAPL,MSFT; all symbols when omitted")
    ] = None,
) -> LatestPrices:
    wanted = tickers(symbols)
    prices = await state.store.latest_prices(tables, wanted or await state.store.symbols(tables))
    missing = sorted(set(wanted or ()) - {p.symbol for p in prices})
    if missing:
        raise UnknownName(f"unknown symbols for source {tables.source!r}: {', '.join(missing)}")
    return LatestPrices(source=tables.source, prices=prices)


@router.get(
    "/sources/{source}/summary",
    response_model=MarketSummary,
    summary="Every symbol's move over the last 24 hours, and the top movers",
)
async def market_summary(
    state: State, tables: Source, top: Annotated[int, Query(ge=1, le=100)] = 5
) -> MarketSummary:
    symbols = await state.store.symbols(tables)
    latest = {p.symbol: p.price for p in await state.store.latest_prices(tables, symbols)}
    references = await state.store.day_references(tables, symbols, now() - timedelta(days=1))
    rows, gainers, losers = movers(latest, references, top)
    return MarketSummary(source=tables.source, symbols=rows, gainers=gainers, losers=losers)
