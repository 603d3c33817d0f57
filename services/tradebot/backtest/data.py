"""History to replay, as ticks in time order: stored ticks, stored bars, or an OHLCV file.

Everything becomes trades, because the live broker fills on trades: a bar is replayed
as its OHLC path — open, then the nearer extreme, the other one, and the close, at
0, 15, 30 and 59 s into the minute — so strategies rebuild exactly that bar, an order
fills at the next bar's open, and a stop inside the bar's range is hit (the usual bar
approximation of backtrader's and NautilusTrader's bar execution).
"""

from __future__ import annotations

import csv
from collections.abc import AsyncIterator, Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg

from tradebot.backfill.store import provider_bar_table
from tradebot.common.models import PriceTick, TickType
from tradebot.common.symbols import normalise_symbol
from tradebot.common.tables import bar_table, tick_table

PATH_OFFSETS = (timedelta(0), timedelta(seconds=15), timedelta(seconds=30), timedelta(seconds=59))
FETCH = 20_000


class DataError(ValueError):
    """History that cannot be replayed (empty, malformed); the message says where."""


@dataclass(frozen=True)
class OhlcvBar:
    symbol: str
    start: datetime
    open: float
    high: float
    low: float
    close: float
    volume: float


def bar_path(bar: OhlcvBar, source: str) -> list[PriceTick]:
    """A 1-minute bar as four trades that rebuild it exactly (volume spread evenly)."""
    nearer_low = bar.open - bar.low <= bar.high - bar.open
    middle = (bar.low, bar.high) if nearer_low else (bar.high, bar.low)
    prices = (bar.open, *middle, bar.close)
    size = bar.volume / 4
    stamp = int(bar.start.timestamp())
    return [
        PriceTick(
            id=f"b{stamp}{part}",
            source=source,
            symbol=bar.symbol,
            time=bar.start + offset,
            price=price,
            size=size,
            volume=size,
        )
        for part, offset, price in zip("ohlc", PATH_OFFSETS, prices, strict=True)
    ]


def bars_as_ticks(bars: Iterable[OhlcvBar], source: str) -> Iterator[PriceTick]:
    for bar in bars:
        yield from bar_path(bar, source)


async def stored_ticks(
    conn: asyncpg.Connection, source: str, symbols: list[str] | None, start: datetime, end: datetime
) -> AsyncIterator[PriceTick]:
    """Stored ticks of [start, end) in time order (ties by symbol and id), streamed by a cursor."""
    query = (
        f"SELECT time, symbol, price, size, bid, ask, volume, id, type FROM {tick_table(source)}"
        " WHERE time >= $1 AND time < $2 AND ($3::text[] IS NULL OR symbol = ANY($3))"
        " ORDER BY time, symbol, id"
    )
    async with conn.transaction():
        async for row in conn.cursor(query, start, end, symbols, prefetch=FETCH):
            yield PriceTick(
                id=row["id"], source=source, symbol=row["symbol"], time=row["time"], price=row["price"],
                size=row["size"], bid=row["bid"], ask=row["ask"], volume=row["volume"],
                type=_tick_type(row["type"]),
            )  # fmt: skip


async def stored_bars(
    conn: asyncpg.Connection,
    source: str,
    symbols: list[str] | None,
    start: datetime,
    end: datetime,
    provider: bool = False,
) -> AsyncIterator[OhlcvBar]:
    """Stored 1-minute bars (rolled up from ticks, or the provider's own) in time order."""
    table = provider_bar_table(source) if provider else bar_table(source)
    query = (
        f"SELECT bucket, symbol, open, high, low, close, volume FROM {table}"
        " WHERE bucket >= $1 AND bucket < $2 AND ($3::text[] IS NULL OR symbol = ANY($3))"
        " ORDER BY bucket, symbol"
    )
    async with conn.transaction():
        async for row in conn.cursor(query, start, end, symbols, prefetch=FETCH):
            yield OhlcvBar(row["symbol"], row["bucket"], row["open"], row["high"], row["low"], row["close"],
                           float(row["volume"]))  # fmt: skip


def _tick_type(value: str) -> TickType:
    return "quote" if value == "quote" else "bar" if value == "bar" else "trade"


TIME_COLUMNS = ("time", "timestamp", "date", "datetime")


def read_csv(path: Path, symbol: str | None) -> list[OhlcvBar]:
    """An OHLCV CSV (time/timestamp/date, open, high, low, close, volume[, symbol]) as bars in time order.

    Times are ISO 8601 (UTC unless they say otherwise) or Unix seconds; the symbol comes
    from a `symbol` column, else `symbol` (the --symbols option), else the file name.
    """
    try:
        handle = path.open(newline="")
    except OSError as error:
        raise DataError(f"--data {path}: {error.strerror}") from None
    with handle:
        reader = csv.DictReader(handle)
        columns = {name.strip().lower(): name for name in reader.fieldnames or []}
        time_column = next((columns[c] for c in TIME_COLUMNS if c in columns), None)
        missing = [c for c in ("open", "high", "low", "close") if c not in columns]
        if time_column is None or missing:
            wanted = ", ".join(missing + ([] if time_column else ["time (or timestamp, date)"]))
            raise DataError(f"--data {path}: no {wanted} column (found: {', '.join(columns) or 'none'})")
        default_symbol = normalise_symbol(symbol or path.stem.upper())
        bars = []
        for line, row in enumerate(reader, start=2):
            try:
                values = {c: float(row[columns[c]]) for c in ("open", "high", "low", "close")}
                volume = (
                    float(row[columns["volume"]]) if "volume" in columns and row[columns["volume"]] else 0.0
                )
                moment = _parse_time(row[time_column])
                name = normalise_symbol(row[columns["symbol"]]) if "symbol" in columns else default_symbol
            except (TypeError, ValueError) as error:
                raise DataError(f"--data {path} line {line}: {error}") from None
            low, high = values["low"], values["high"]
            body = sorted((values["open"], values["close"]))
            if not 0 < low <= body[0] <= body[1] <= high:
                raise DataError(
                    f"--data {path} line {line}: need 0 < low <= open, close <= high, got {values}"
                )
            bars.append(
                OhlcvBar(name, moment, values["open"], values["high"], values["low"], values["close"], volume)
            )
    if not bars:
        raise DataError(f"--data {path}: no rows")
    bars.sort(key=lambda b: (b.start, b.symbol))
    return bars


def _parse_time(text: str) -> datetime:
    text = (text or "").strip()
    try:
        return datetime.fromtimestamp(float(text), UTC)
    except ValueError:
        pass
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(f"time {text!r} is neither ISO 8601 nor Unix seconds") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
