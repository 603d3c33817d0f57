"""Reading history from PostgreSQL/TimescaleDB into the API's models."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any, cast

import asyncpg
from asyncpg.pool import PoolConnectionProxy
from pydantic import BaseModel

from tradebot.api import queries
from tradebot.api.models import Interval, LatestPrice, Position, SourceStats
from tradebot.api.ranges import INTERVALS, encode_cursor
from tradebot.api.sources import SourceCatalog, SourceTables, UnknownName
from tradebot.common.models import Fill, Order, OrderStatus, Side

# Bars and ticks can be thousands of rows: they stay plain rows, serialised straight to JSON
# (typed by their columns; the routes' response models document them and the tests check them).
Row = dict[str, Any]

Connection = asyncpg.Connection | PoolConnectionProxy  # a pool hands out proxies


class HistoryStore:
    """Queries over a pool; the tables come from the catalog, the values are bind parameters."""

    def __init__(self, pool: asyncpg.Pool, catalog: SourceCatalog) -> None:
        self.pool = pool
        self.catalog = catalog

    async def symbols(self, tables: SourceTables) -> list[str]:
        async with self.pool.acquire() as conn:
            return [row["symbol"] for row in await conn.fetch(queries.distinct_symbols(tables.ticks))]

    async def require_symbol(self, tables: SourceTables, symbol: str) -> None:
        async with self.pool.acquire() as conn:
            if not await conn.fetchval(queries.symbol_exists(tables.ticks), symbol):
                raise UnknownName(f"unknown symbol {symbol!r} for source {tables.source!r}")

    async def source_stats(self, tables: SourceTables) -> SourceStats:
        async with self.pool.acquire() as conn:
            bounds = cast(asyncpg.Record, await conn.fetchrow(queries.tick_time_bounds(tables.ticks)))
            symbols = len(await conn.fetch(queries.distinct_symbols(tables.ticks)))
            ticks = await self._estimate_rows(conn, tables.ticks)
            bars = await self._estimate_rows(conn, tables.bars) if tables.bars else 0
            size = await self._total_bytes(conn, tables.ticks)
        return SourceStats(
            source=tables.source,
            tick_table=tables.ticks,
            bar_table=tables.bars,
            approximate_ticks=ticks,
            approximate_bars=bars,
            symbols=symbols,
            first_tick=bounds["first"],
            last_tick=bounds["last"],
            total_bytes=size,
        )

    async def ticks_page(
        self, tables: SourceTables, symbol: str, start: datetime, end: datetime,
        after: tuple[datetime, str] | None, limit: int,
    ) -> tuple[list[Row], str | None]:  # fmt: skip
        """One page in (time, id) order (rows with the fields of `Tick`) and the next page's cursor."""
        after_time, after_id = after or (start - timedelta(microseconds=1), "")
        async with self.pool.acquire() as conn:
            rows = await conn.fetch(
                queries.ticks_page(tables.ticks), symbol, start, end, after_time, after_id, limit + 1
            )
        ticks = [dict(row) for row in rows[:limit]]
        more = len(rows) > limit
        return ticks, encode_cursor(ticks[-1]["time"], ticks[-1]["id"]) if more else None

    async def bars(
        self, tables: SourceTables, symbol: str, interval: Interval, start: datetime, end: datetime
    ) -> list[Row]:
        """Rows with the fields of `Bar`, oldest first."""
        if tables.bars is None:
            raise UnknownName(f"source {tables.source!r} has no bar table yet")
        stored = tables.bars if interval is Interval.M1 else tables.wider_bars.get(interval.value)
        sql = queries.bars(stored or tables.bars, stored is not None, self.catalog.timescale)
        async with self.pool.acquire() as conn:
            rows = await conn.fetch(sql, symbol, start, end, INTERVALS[interval])
        return [dict(row) for row in rows]

    async def latest_prices(self, tables: SourceTables, symbols: list[str]) -> list[LatestPrice]:
        async with self.pool.acquire() as conn:
            rows = await conn.fetch(queries.latest_prices(tables.ticks), symbols)
        return [LatestPrice(**row) for row in rows]

    async def day_references(
        self, tables: SourceTables, symbols: list[str], since: datetime
    ) -> dict[str, tuple[float | None, float]]:
        """Per symbol: the first open since `since` (None without bars) and the volume since then."""
        if tables.bars is None:
            return {symbol: (None, 0.0) for symbol in symbols}
        async with self.pool.acquire() as conn:
            rows = await conn.fetch(queries.day_reference(tables.bars), symbols, since)
        return {row["symbol"]: (row["reference_price"], row["volume"] or 0.0) for row in rows}

    async def recent(
        self, sql: str, model: type[BaseModel], symbol: str | None, start: datetime, end: datetime, limit: int
    ) -> list:
        async with self.pool.acquire() as conn:
            rows = await conn.fetch(sql, symbol, start, end, limit)
        return [model(**row) for row in rows]

    async def equity(self, start: datetime, end: datetime, limit: int) -> list[Row]:
        """The newest `limit` equity snapshots in [start, end), oldest first (none before storage ran)."""
        async with self.pool.acquire() as conn:
            try:
                return [dict(row) for row in await conn.fetch(queries.EQUITY, start, end, limit)]
            except asyncpg.UndefinedTableError:
                return []

    async def fills_with_orders(self, after_time: datetime, after_id: str) -> list[tuple[Order, Fill]]:
        """Every fill after (time, id) with its order, in that order (stored rows: checked already)."""
        async with self.pool.acquire() as conn:
            rows = await conn.fetch(queries.FILLS_WITH_ORDERS, after_time, after_id)
        return [
            (
                Order.prechecked(
                    id=r["order_id"], signal_id=r["signal_id"], time=r["order_time"], strategy=r["strategy"],
                    symbol=r["symbol"], side=Side(r["side"]), quantity=r["quantity"],
                    reference_price=r["reference_price"], status=OrderStatus(r["status"]), reason=r["reason"],
                ),
                Fill.prechecked(
                    id=r["id"], order_id=r["order_id"], time=r["time"], symbol=r["symbol"],
                    side=Side(r["side"]), quantity=r["quantity"], price=r["price"], fee=r["fee"],
                    slippage=r["slippage"],
                ),
            )
            for r in rows
        ]  # fmt: skip

    async def positions(self, include_closed: bool) -> list[Position]:
        async with self.pool.acquire() as conn:
            rows = await conn.fetch(queries.POSITIONS, include_closed)
        return [Position(**row) for row in rows]

    async def _estimate_rows(self, conn: Connection, table: str) -> int:
        """The planner's estimate (TimescaleDB's for hypertables, and for a continuous aggregate
        that of its materialised rows); counted only if never analysed."""
        if self.catalog.timescale:
            table = await conn.fetchval(queries.MATERIALIZATION_OF, table) or table
            try:
                return int(await conn.fetchval("SELECT approximate_row_count($1::regclass)", table))
            except asyncpg.PostgresError:
                pass
        estimate = await conn.fetchval("SELECT reltuples FROM pg_class WHERE oid = $1::regclass", table)
        if estimate is None or estimate < 0:
            return int(await conn.fetchval(f"SELECT count(*) FROM {table}"))
        return int(estimate)

    async def _total_bytes(self, conn: Connection, table: str) -> int:
        if self.catalog.timescale:
            try:
                return int(await conn.fetchval("SELECT hypertable_size($1::regclass)", table) or 0)
            except asyncpg.PostgresError:
                pass
        return int(await conn.fetchval("SELECT pg_total_relation_size($1::regclass)", table))
