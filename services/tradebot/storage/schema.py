"""The database schema, created idempotently, with TimescaleDB when it is there.

With TimescaleDB, tick tables are hypertables (compressed after a day), and the
1-minute bars are a continuous aggregate. Without it (the embedded default),
ticks are plain tables and the storage service rolls bars up itself, into a
table of the same name and columns — readers never need to know which.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import asyncpg

from tradebot.common.tables import (
    AUDIT_TABLE,
    EQUITY_TABLE,
    FILLS_TABLE,
    ORDERS_TABLE,
    POSITIONS_TABLE,
    SIGNALS_TABLE,
    bar_table,
    tick_table,
)

log = logging.getLogger(__name__)
SCHEMA_LOCK = 7_431_001  # advisory lock id serialising DDL between processes

COMMON_DDL = f"""
CREATE TABLE IF NOT EXISTS {SIGNALS_TABLE} (
    id text PRIMARY KEY,
    time timestamptz NOT NULL,
    strategy text NOT NULL,
    symbol text NOT NULL,
    side text NOT NULL,
    strength double precision NOT NULL,
    reason text NOT NULL,
    price double precision NOT NULL,
    source text NOT NULL,
    tick_id text NOT NULL,
    tick_time timestamptz NOT NULL,
    atr double precision
);
ALTER TABLE {SIGNALS_TABLE} ADD COLUMN IF NOT EXISTS atr double precision;
CREATE INDEX IF NOT EXISTS {SIGNALS_TABLE}_symbol_time ON {SIGNALS_TABLE} (symbol, time DESC);
CREATE INDEX IF NOT EXISTS {SIGNALS_TABLE}_time ON {SIGNALS_TABLE} (time DESC);

CREATE TABLE IF NOT EXISTS {ORDERS_TABLE} (
    id text PRIMARY KEY,
    signal_id text NOT NULL UNIQUE,
    time timestamptz NOT NULL,
    strategy text NOT NULL,
    symbol text NOT NULL,
    side text NOT NULL,
    quantity double precision NOT NULL,
    reference_price double precision NOT NULL,
    status text NOT NULL,
    reason text NOT NULL
);
CREATE INDEX IF NOT EXISTS {ORDERS_TABLE}_time ON {ORDERS_TABLE} (time DESC);

CREATE TABLE IF NOT EXISTS {FILLS_TABLE} (
    id text PRIMARY KEY,
    order_id text NOT NULL,
    time timestamptz NOT NULL,
    symbol text NOT NULL,
    side text NOT NULL,
    quantity double precision NOT NULL,
    price double precision NOT NULL,
    fee double precision NOT NULL,
    slippage double precision NOT NULL
);
CREATE INDEX IF NOT EXISTS {FILLS_TABLE}_time ON {FILLS_TABLE} (time DESC);

CREATE TABLE IF NOT EXISTS {POSITIONS_TABLE} (
    symbol text PRIMARY KEY,
    quantity double precision NOT NULL,
    average_price double precision NOT NULL,
    realized_pnl double precision NOT NULL,
    market_price double precision NOT NULL,
    unrealized_pnl double precision NOT NULL,
    time timestamptz NOT NULL
);
"""
AUDIT_DDL = f"""
CREATE TABLE IF NOT EXISTS {AUDIT_TABLE} (
    id bigserial PRIMARY KEY,
    time timestamptz NOT NULL,
    actor text NOT NULL,
    action text NOT NULL,
    symbol text,
    reason text NOT NULL,
    control_id text NOT NULL UNIQUE
);
CREATE INDEX IF NOT EXISTS {AUDIT_TABLE}_time ON {AUDIT_TABLE} (time DESC);
"""
EQUITY_DDL = f"""
CREATE TABLE IF NOT EXISTS {EQUITY_TABLE} (
    time timestamptz PRIMARY KEY,
    equity double precision NOT NULL,
    cash double precision NOT NULL,
    realized_pnl double precision NOT NULL,
    unrealized_pnl double precision NOT NULL,
    fees_paid double precision NOT NULL,
    open_positions integer NOT NULL
);
"""


def tick_table_ddl(source: str) -> str:
    table = tick_table(source)
    return f"""
CREATE TABLE IF NOT EXISTS {table} (
    time timestamptz NOT NULL,
    symbol text NOT NULL,
    price double precision NOT NULL,
    size double precision NOT NULL,
    bid double precision,
    ask double precision,
    volume double precision NOT NULL,
    id text NOT NULL,
    type text NOT NULL DEFAULT 'trade',
    PRIMARY KEY (symbol, time, id)
);
ALTER TABLE {table} ADD COLUMN IF NOT EXISTS type text NOT NULL DEFAULT 'trade';
CREATE INDEX IF NOT EXISTS {table}_time ON {table} (time DESC);
"""


def rollup_bar_table_ddl(source: str) -> str:
    table = bar_table(source)
    return f"""
CREATE TABLE IF NOT EXISTS {table} (
    bucket timestamptz NOT NULL,
    symbol text NOT NULL,
    open double precision NOT NULL,
    high double precision NOT NULL,
    low double precision NOT NULL,
    close double precision NOT NULL,
    volume double precision NOT NULL,
    trades bigint NOT NULL,
    first_time timestamptz NOT NULL,
    last_time timestamptz NOT NULL,
    PRIMARY KEY (symbol, bucket)
);
CREATE INDEX IF NOT EXISTS {table}_bucket ON {table} (bucket DESC);
"""


def timescale_ddl(source: str) -> list[str]:
    ticks, bars = tick_table(source), bar_table(source)
    return [
        f"SELECT create_hypertable('{ticks}', 'time', if_not_exists => TRUE,"
        " chunk_time_interval => INTERVAL '1 day', migrate_data => TRUE)",
        f"ALTER TABLE {ticks} SET (timescaledb.compress, timescaledb.compress_segmentby = 'symbol')",
        f"SELECT add_compression_policy('{ticks}', INTERVAL '1 day', if_not_exists => TRUE)",
        f"""CREATE MATERIALIZED VIEW IF NOT EXISTS {bars}
            WITH (timescaledb.continuous, timescaledb.materialized_only = false) AS
            SELECT time_bucket(INTERVAL '1 minute', time) AS bucket, symbol,
                   first(price, time) AS open, max(price) AS high, min(price) AS low,
                   last(price, time) AS close, sum(size) AS volume, count(*) AS trades,
                   min(time) AS first_time, max(time) AS last_time
            FROM {ticks} GROUP BY bucket, symbol WITH NO DATA""",
        f"SELECT add_continuous_aggregate_policy('{bars}', start_offset => INTERVAL '1 hour',"
        " end_offset => INTERVAL '1 minute', schedule_interval => INTERVAL '1 minute',"
        " if_not_exists => TRUE)",
    ]


@dataclass
class Schema:
    """What exists in the database; source tables are created on first use."""

    timescale: bool = False
    sources: set[str] = field(default_factory=set)

    async def ensure_source(self, conn: asyncpg.Connection, source: str) -> None:
        if source in self.sources:
            return
        async with conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock($1)", SCHEMA_LOCK)
            await conn.execute(tick_table_ddl(source))
            if self.timescale:
                for statement in timescale_ddl(source):
                    await conn.execute(statement)
            else:
                await conn.execute(rollup_bar_table_ddl(source))
        self.sources.add(source)
        log.info("tables ready", extra={"source": source, "timescale": self.timescale})


async def timescale_available(conn: asyncpg.Connection) -> bool:
    """Try to enable TimescaleDB; False on plain PostgreSQL (e.g. the embedded default)."""
    if not await conn.fetchval("SELECT 1 FROM pg_available_extensions WHERE name = 'timescaledb'"):
        return False
    try:
        await conn.execute("CREATE EXTENSION IF NOT EXISTS timescaledb")
    except asyncpg.PostgresError as error:
        log.warning("timescaledb is installed but cannot be enabled", extra={"error": str(error)})
        return False
    return True


async def ensure_tables(conn: asyncpg.Connection | asyncpg.pool.PoolConnectionProxy, ddl: str) -> None:
    """Run DDL under the schema lock (a service that writes a table before storage made it)."""
    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock($1)", SCHEMA_LOCK)
        await conn.execute(ddl)


async def ensure_schema(conn: asyncpg.Connection, sources: tuple[str, ...] = ("synthetic",)) -> Schema:
    schema = Schema(timescale=await timescale_available(conn))
    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock($1)", SCHEMA_LOCK)
        await conn.execute(COMMON_DDL + AUDIT_DDL + EQUITY_DDL)
    for source in sources:
        await schema.ensure_source(conn, source)
    return schema
