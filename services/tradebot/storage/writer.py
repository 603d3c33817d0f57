"""Batch writes: COPY into a session-local staging table, then one INSERT per
table, inside one transaction.

COPY makes it fast. The INSERT first runs without a conflict clause, inside a
savepoint: a batch of new rows (nearly every batch) is then as cheap as COPY
into the same indexes. A batch holding a row already stored (a redelivery, an
upstream replay) fails that statement with a unique violation, and runs again
with `ON CONFLICT DO NOTHING` on each table's natural key: nothing is stored
twice either way. The bars are rolled up from the rows really inserted, so
replays never double-count.

A batch the database refuses for a data reason is split until the refused rows
are found (`write_or_refuse`); the rest is stored.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import cache
from operator import attrgetter

import asyncpg

from tradebot.common.models import Fill, Message, Order, Position, PriceTick, TradeSignal
from tradebot.common.tables import (
    FILLS_TABLE,
    ORDERS_TABLE,
    POSITIONS_TABLE,
    SIGNALS_TABLE,
    bar_table,
    tick_table,
)
from tradebot.storage.schema import Schema

log = logging.getLogger(__name__)
TICK_COLUMNS = ("time", "symbol", "price", "size", "bid", "ask", "volume", "id", "type")
SAFE_BATCHES_AFTER_A_CONFLICT = 10  # batches written with ON CONFLICT before trying without again
# What the database says about the data itself (class 22 "data exception", 23 "integrity
# constraint violation"): no retry can store it.
DATA_ERRORS: tuple[type[Exception], ...] = (asyncpg.DataError, asyncpg.IntegrityConstraintViolationError)


@dataclass(frozen=True)
class TableSpec:
    """How one kind of message lands in one table.

    `insert` is the statement moving rows from the staging table `{stage}`, skipping rows
    already stored; `fast` (when set) is the same without the conflict clause, for batches
    of new rows. `source` is set for tick tables, which are created on first use.
    """

    table: str
    columns: tuple[str, ...]
    insert: str
    source: str | None = None
    fast: str | None = None

    @property
    def stage(self) -> str:
        return f"stage_{self.table}"

    def record(self, message: Message) -> tuple:
        return _row_getter(self.columns)(message)

    def insert_statement(self) -> str:
        return self.insert.format(stage=self.stage)

    def fast_statement(self) -> str:
        return (self.fast or self.insert).format(stage=self.stage)


@cache
def _row_getter(columns: tuple[str, ...]):
    """A C-level getter of the columns' attributes, as a tuple (always a tuple, even for one)."""
    getter = attrgetter(*columns)
    return getter if len(columns) > 1 else lambda message: (getter(message),)


ON_CONFLICT_SKIP = "ON CONFLICT DO NOTHING"


def insert_new(
    table: str, columns: tuple[str, ...], select: str = "", conflict: str = ON_CONFLICT_SKIP
) -> str:
    names = ", ".join(columns)
    select = (select or "SELECT {columns} FROM {stage}").replace("{columns}", names)
    return f"INSERT INTO {table} ({names}) {select} {conflict}".rstrip()


def _spec(model: type[Message], table: str, **insert_options: str) -> TableSpec:
    columns = tuple(model.model_fields)
    if insert_options:  # an upsert: always the one statement
        return TableSpec(table, columns, insert_new(table, columns, **insert_options))
    return TableSpec(table, columns, insert_new(table, columns), fast=insert_new(table, columns, conflict=""))


STATIC_TABLES: dict[type[Message], TableSpec] = {
    TradeSignal: _spec(TradeSignal, SIGNALS_TABLE),
    Order: _spec(Order, ORDERS_TABLE),
    Fill: _spec(Fill, FILLS_TABLE),
    Position: _spec(
        Position,
        POSITIONS_TABLE,
        # One row per symbol per statement, and an older position never overwrites a newer one.
        select="SELECT DISTINCT ON (symbol) {columns} FROM {stage} ORDER BY symbol, time DESC",
        conflict="ON CONFLICT (symbol) DO UPDATE SET quantity = excluded.quantity,"
        " average_price = excluded.average_price, realized_pnl = excluded.realized_pnl,"
        " market_price = excluded.market_price, unrealized_pnl = excluded.unrealized_pnl,"
        " time = excluded.time WHERE positions.time <= excluded.time",
    ),
}


def insert_ticks_with_rollup(source: str, conflict: str = ON_CONFLICT_SKIP) -> str:
    """Insert new ticks and fold exactly those into the 1-minute bars (plain PostgreSQL)."""
    ticks, bars = tick_table(source), bar_table(source)
    return f"""
WITH inserted AS (
    INSERT INTO {ticks} SELECT * FROM {{stage}} {conflict}
    RETURNING time, symbol, price, size
), batch AS (
    SELECT date_trunc('minute', time) AS bucket, symbol,
           (array_agg(price ORDER BY time))[1] AS open, max(price) AS high, min(price) AS low,
           (array_agg(price ORDER BY time DESC))[1] AS close, sum(size) AS volume,
           count(*) AS trades, min(time) AS first_time, max(time) AS last_time
    FROM inserted GROUP BY 1, 2
)
INSERT INTO {bars} AS bar SELECT * FROM batch
ON CONFLICT (symbol, bucket) DO UPDATE SET
    open = CASE WHEN excluded.first_time < bar.first_time THEN excluded.open ELSE bar.open END,
    close = CASE WHEN excluded.last_time >= bar.last_time THEN excluded.close ELSE bar.close END,
    high = greatest(bar.high, excluded.high),
    low = least(bar.low, excluded.low),
    volume = bar.volume + excluded.volume,
    trades = bar.trades + excluded.trades,
    first_time = least(bar.first_time, excluded.first_time),
    last_time = greatest(bar.last_time, excluded.last_time)
"""


@cache
def tick_spec(source: str, timescale: bool) -> TableSpec:
    """With TimescaleDB a continuous aggregate keeps the bars; without, we roll them up."""
    table = tick_table(source)
    if timescale:
        insert, fast = insert_new(table, TICK_COLUMNS), insert_new(table, TICK_COLUMNS, conflict="")
    else:
        insert, fast = insert_ticks_with_rollup(source), insert_ticks_with_rollup(source, conflict="")
    return TableSpec(table, TICK_COLUMNS, insert, source=source, fast=fast)


def spec_for(message: Message, timescale: bool) -> TableSpec:
    if isinstance(message, PriceTick):
        return tick_spec(message.source, timescale)
    return STATIC_TABLES[type(message)]


def rows_by_table(messages: Iterable[Message], timescale: bool) -> dict[TableSpec, list[tuple]]:
    """Pure: the rows each table receives from a batch of messages."""
    rows: dict[TableSpec, list[tuple]] = defaultdict(list)
    for message in messages:
        spec = spec_for(message, timescale)
        rows[spec].append(spec.record(message))
    return rows


class BatchWriter:
    """Writes batches on one dedicated connection (the staging tables are session-local)."""

    def __init__(self, conn: asyncpg.Connection, schema: Schema) -> None:
        self.conn = conn
        self.schema = schema
        self._staged: set[str] = set()
        self._safe_batches = 0  # batches left to write with ON CONFLICT after a conflict

    async def write(self, messages: Iterable[Message]) -> dict[str, int]:
        """Store a batch atomically; returns the rows sent per table."""
        grouped = rows_by_table(messages, self.schema.timescale)
        for spec in grouped:
            await self._prepare(spec)
        if self._safe_batches == 0:
            try:
                await self._transaction(grouped, fast=True)
                return {spec.table: len(records) for spec, records in grouped.items()}
            except asyncpg.UniqueViolationError:  # a row already stored: this batch is a replay
                self._safe_batches = SAFE_BATCHES_AFTER_A_CONFLICT
        self._safe_batches -= 1
        await self._transaction(grouped, fast=False)
        return {spec.table: len(records) for spec, records in grouped.items()}

    async def _transaction(self, grouped: dict[TableSpec, list[tuple]], fast: bool) -> None:
        """COPY into the staging tables and insert from them, in one transaction (no savepoint:
        one per batch cost PostgreSQL a fifth more; a conflict redoes the cheap COPY instead)."""
        async with self.conn.transaction():
            for spec, records in grouped.items():
                await self.conn.copy_records_to_table(spec.stage, records=records, columns=spec.columns)
            for spec in grouped:
                await self.conn.execute(spec.fast_statement() if fast else spec.insert_statement())

    async def write_or_refuse(self, messages: Sequence[Message]) -> list[tuple[int, str]]:
        """Store what the database accepts; returns (index, the database's reason) of each
        message it refused for a data reason, found by splitting the batch in halves."""
        try:
            await self.write(messages)
            return []
        except DATA_ERRORS as error:
            if len(messages) == 1:
                log.error("the database refused a message", extra={"error": str(error)})
                return [(0, f"{type(error).__name__}: {error}")]
        half = len(messages) // 2
        first = await self.write_or_refuse(messages[:half])
        second = await self.write_or_refuse(messages[half:])
        return first + [(index + half, reason) for index, reason in second]

    async def _prepare(self, spec: TableSpec) -> None:
        if spec.source is not None:
            await self.schema.ensure_source(self.conn, spec.source)
        if spec.table not in self._staged:
            await self.conn.execute(
                f"CREATE TEMP TABLE IF NOT EXISTS {spec.stage} (LIKE {spec.table}) ON COMMIT DELETE ROWS"
            )
            self._staged.add(spec.table)
