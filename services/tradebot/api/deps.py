"""What the routes share: the app's state, and request parameters checked once.

Each parameter's schema in the OpenAPI document states exactly the rule its check
applies (pattern, bounds), so every request the document allows is answered.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime
from typing import Annotated, Any

from fastapi import Depends, Path, Query, Request
from pydantic import AfterValidator, BeforeValidator, WithJsonSchema
from redis.asyncio import Redis

from tradebot.api.ledger import TradeLedger
from tradebot.api.models import Problem
from tradebot.api.ranges import EARLIEST, LATEST, RequestProblem
from tradebot.api.sources import SourceCatalog, SourceTables, UnknownName
from tradebot.api.store import HistoryStore
from tradebot.backtest.jobs import BacktestRunner
from tradebot.common.models import SYMBOL_PATTERN
from tradebot.common.settings import Settings

NOT_FOUND: dict[int | str, dict[str, Any]] = {
    404: {"model": Problem, "description": "unknown source, symbol or service (named)"}
}
AUTH_PROBLEMS: dict[int | str, dict[str, Any]] = {
    401: {"model": Problem, "description": "no token or session, or a wrong or expired one"},
    403: {"model": Problem, "description": "a change requested from another site (its Origin)"},
}
MAX_PRICE_SYMBOLS = 1_000
SYMBOL_PARAM_PATTERN = SYMBOL_PATTERN.replace("A-Z", "A-Za-z")
"""A ticker as a request may write it, in any case (AAPL, aapl, BRK.B); the API upper-cases it."""
_ONE_SYMBOL = SYMBOL_PARAM_PATTERN.removeprefix("^").removesuffix("$")
SYMBOL_LIST_PATTERN = rf"^(?:{_ONE_SYMBOL}(?:,{_ONE_SYMBOL}){{0,{MAX_PRICE_SYMBOLS - 1}}})?$"
"""Up to MAX_PRICE_SYMBOLS tickers separated by commas; empty means every symbol."""
NOT_A_TICKER = "{!r} is not a ticker symbol (letters and digits, e.g. AAPL or BRK.B)"


def ticker(raw: str) -> str:
    """Pure: a requested ticker, upper-cased; ValueError (a 422 naming the parameter) otherwise."""
    if not re.fullmatch(SYMBOL_PARAM_PATTERN, raw):
        raise ValueError(NOT_A_TICKER.format(raw))
    return raw.upper()


def tickers(raw: str | None) -> list[str] | None:
    """Pure: a comma-separated list of tickers, upper-cased and de-duplicated; None (all) when empty."""
    if not raw:
        return None
    items = raw.split(",")
    try:
        if len(items) > MAX_PRICE_SYMBOLS:
            raise ValueError(f"at most {MAX_PRICE_SYMBOLS} symbols per request")
        return list(dict.fromkeys(ticker(item) for item in items))
    except ValueError as error:
        raise RequestProblem(str(error), ("query", "symbols")) from None


Ticker = Annotated[
    str, AfterValidator(ticker), WithJsonSchema({"type": "string", "pattern": SYMBOL_PARAM_PATTERN})
]
Tickers = Annotated[str, WithJsonSchema({"type": "string", "pattern": SYMBOL_LIST_PATTERN})]
ISO_DATE_PATTERN = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}"


def iso_time(raw: object) -> object:
    """Only ISO 8601 times: a number would otherwise be taken as seconds since 1970."""
    if isinstance(raw, str) and not re.match(ISO_DATE_PATTERN, raw):
        raise ValueError(f"{raw!r} is not an ISO 8601 time, e.g. 2026-01-05T10:00:00Z")
    return raw


Moment = Annotated[
    datetime,
    BeforeValidator(iso_time),
    WithJsonSchema({"type": "string", "format": "date-time", "pattern": ISO_DATE_PATTERN}),
]
WHEN = f"ISO 8601, naive means UTC; before {EARLIEST.year} or from {LATEST.year} on means unbounded"
Start = Annotated[Moment | None, Query(description=f"inclusive; {WHEN}")]
End = Annotated[Moment | None, Query(description=f"exclusive, after start (else nothing); {WHEN}")]


@dataclass
class ApiState:
    settings: Settings
    catalog: SourceCatalog
    store: HistoryStore
    redis: Redis
    backtests: BacktestRunner = field(default_factory=BacktestRunner)
    ledger: TradeLedger = field(init=False)

    def __post_init__(self) -> None:
        self.ledger = TradeLedger(self.store)


def api_state(request: Request) -> ApiState:
    return request.app.state.api


State = Annotated[ApiState, Depends(api_state)]


async def source_tables(
    state: State, source: Annotated[str, Path(description="data source, e.g. synthetic", max_length=64)]
) -> SourceTables:
    return await state.catalog.get(source)


Source = Annotated[SourceTables, Depends(source_tables)]


async def known_symbol(
    state: State,
    tables: Source,
    symbol: Annotated[
        str,
        Path(description="ticker, e.g. AAPL (any case)"),
        WithJsonSchema({"type": "string", "pattern": SYMBOL_PARAM_PATTERN}),
    ],
) -> str:
    """A symbol that has ticks in this source; anything else (malformed too) is a 404 naming it."""
    try:
        normalised = ticker(symbol)
    except ValueError:
        raise UnknownName(f"unknown symbol {symbol!r} for source {tables.source!r}") from None
    await state.store.require_symbol(tables, normalised)
    return normalised


KnownSymbol = Annotated[str, Depends(known_symbol)]
SymbolFilter = Annotated[
    Ticker | None, Query(description="only this symbol (a filter: none matching is an empty list)")
]
