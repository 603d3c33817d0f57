"""Where backfilled history lands: trades as ticks, provider bars in their own table, checkpoints.

Trades go into `price_ticks_<source>` through the storage service's BatchWriter
(COPY + ON CONFLICT on (symbol, time, id)), so live and historical trades share a
key and are never stored twice. Provider bars go into `provider_bars_1m_<source>`
(same columns as the 1-minute bars), not `price_bars_1m_<source>`: that one is
rolled up from stored ticks (a continuous aggregate under TimescaleDB) and must
stay so. Each page is written in one transaction with its checkpoint, so a
killed run resumes exactly after the last stored page.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

import asyncpg

from tradebot.common.models import PriceTick, validate_source_name
from tradebot.common.tables import bar_table
from tradebot.providers.history import Bar, Kind, Row
from tradebot.storage.schema import ensure_schema, refresh_bars, rollup_bar_table_ddl
from tradebot.storage.writer import BatchWriter, TableSpec, insert_new

CHECKPOINTS_TABLE = "backfill_checkpoints"
PROVIDER_BAR_PREFIX = "provider_bars_1m_"
BAR_COLUMNS = (
    "bucket",
    "symbol",
    "open",
    "high",
    "low",
    "close",
    "volume",
    "trades",
    "first_time",
    "last_time",
)
CHECKPOINTS_DDL = f"""
CREATE TABLE IF NOT EXISTS {CHECKPOINTS_TABLE} (
    source text NOT NULL,
    symbol text NOT NULL,
    kind text NOT NULL,
    last_time timestamptz NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (source, symbol, kind)
)
"""


def provider_bar_table(source: str) -> str:
    return PROVIDER_BAR_PREFIX + validate_source_name(source)


def provider_bar_ddl(source: str) -> str:
    """The rolled-up bar table's DDL under the provider-bar name (same columns and key)."""
    return rollup_bar_table_ddl(source).replace(bar_table(source), provider_bar_table(source))


def row_time(row: Row) -> datetime:
    return row.bucket if isinstance(row, Bar) else row.time


class HistoryStore:
    """Writes pages of one source on one connection (callers serialise access)."""

    def __init__(self, conn: asyncpg.Connection, source: str) -> None:
        self.conn = conn
        self.source = validate_source_name(source)
        table = provider_bar_table(source)
        self.bars = TableSpec(table, BAR_COLUMNS, insert_new(table, BAR_COLUMNS))
        self.ticks: BatchWriter | None = None

    async def setup(self) -> None:
        schema = await ensure_schema(self.conn, (self.source,))
        await self.conn.execute(provider_bar_ddl(self.source))
        await self.conn.execute(CHECKPOINTS_DDL)
        stage, table = self.bars.stage, self.bars.table
        await self.conn.execute(
            f"CREATE TEMP TABLE IF NOT EXISTS {stage} (LIKE {table}) ON COMMIT DELETE ROWS"
        )
        self.ticks = BatchWriter(self.conn, schema)

    async def finish(self) -> None:
        """Bring TimescaleDB's bars up to the backfilled trades at once."""
        await refresh_bars(self.conn, self.source)

    async def checkpoints(self) -> dict[tuple[str, str], datetime]:
        rows = await self.conn.fetch(
            f"SELECT symbol, kind, last_time FROM {CHECKPOINTS_TABLE} WHERE source = $1", self.source
        )
        return {(row["symbol"], row["kind"]): row["last_time"] for row in rows}

    async def clear_checkpoints(self) -> None:
        await self.conn.execute(f"DELETE FROM {CHECKPOINTS_TABLE} WHERE source = $1", self.source)

    async def write(self, kind: Kind, symbol: str, rows: Sequence[Row], checkpoint: datetime) -> None:
        """Store a page and move the checkpoint, atomically."""
        assert self.ticks is not None, "setup() first"
        async with self.conn.transaction():
            if kind == "bars" and rows:
                records = [row.record() for row in rows if isinstance(row, Bar)]
                await self.conn.copy_records_to_table(self.bars.stage, records=records, columns=BAR_COLUMNS)
                await self.conn.execute(self.bars.insert_statement())
            elif rows:
                await self.ticks.write(row for row in rows if isinstance(row, PriceTick))
            await self.conn.execute(
                f"INSERT INTO {CHECKPOINTS_TABLE} (source, symbol, kind, last_time) VALUES ($1, $2, $3, $4)"
                " ON CONFLICT (source, symbol, kind) DO UPDATE SET updated_at = now(),"
                f" last_time = greatest({CHECKPOINTS_TABLE}.last_time, excluded.last_time)",
                self.source,
                symbol,
                kind,
                checkpoint,
            )
