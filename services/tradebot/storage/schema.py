"""The database schema, created idempotently, with TimescaleDB when it is there.

With TimescaleDB, tick tables are hypertables (chunks sized to the tick rate,
compressed by symbol once a chunk is past, dropped after TICK_RETENTION when
set), the 1-minute bars are a real-time continuous aggregate, and 5m/15m/1h/1d
bars are continuous aggregates on the width below, kept fresh by refresh
policies. Without it, ticks are plain tables and the storage service rolls
1-minute bars up itself, into a table of the same name and columns; wider bars
are re-bucketed from those at query time. A database made without TimescaleDB
is upgraded in place the first time its server has the extension.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import timedelta

import asyncpg

from tradebot.common.tables import (
    AUDIT_TABLE,
    BAR_WIDTHS,
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


class SchemaError(RuntimeError):
    """The database cannot be used as it is; the message says why and what to do."""


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


# Each wider bar is a continuous aggregate on the one below: (width, its interval, the width
# below, how often its policy runs, how far behind now it materialises). Each level stays
# further behind than the one below plus its own width, so it only materialises buckets the
# level below has materialised whole; the rest is aggregated at query time. Late ticks
# reach a level at its next run after the one below (bulk writers call refresh_bars).
ROLLUPS = (
    ("5m", "5 minutes", "1m", "5 minutes", "10 minutes"),
    ("15m", "15 minutes", "5m", "15 minutes", "30 minutes"),
    ("1h", "1 hour", "15m", "1 hour", "2 hours"),
    ("1d", "1 day", "1h", "1 hour", "2 days"),
)
ONE_MINUTE_LAG = "1 minute"  # the 1m bars materialise up to the minute before now
ROWS_PER_CHUNK = 10_000_000  # ~1-2 GB of ticks with their indexes before compression
SHORTEST_CHUNK, LONGEST_CHUNK = timedelta(hours=1), timedelta(days=7)


def chunk_interval(ticks_per_second: float) -> timedelta:
    """Pure: a chunk holds about ROWS_PER_CHUNK ticks at that rate, in whole hours, 1 hour to 7 days."""
    seconds = ROWS_PER_CHUNK / ticks_per_second if ticks_per_second > 0 else LONGEST_CHUNK.total_seconds()
    hours = timedelta(hours=max(1, round(seconds / 3_600)))
    return min(max(hours, SHORTEST_CHUNK), LONGEST_CHUNK)


DEFAULT_CHUNK = timedelta(days=1)  # until a complete chunk shows the source's tick rate


@dataclass(frozen=True)
class TickPolicy:
    """How TimescaleDB keeps one source's ticks: how long they stay (None: for ever; the
    bars outlive them). Chunks are sized to the rate the last complete chunk shows, and a
    chunk is compressed once it is a chunk's length in the past."""

    retention: timedelta | None = None


def interval_sql(value: timedelta | None) -> str:
    """Pure: a SQL interval literal (whole seconds), or NULL."""
    return "NULL" if value is None else f"INTERVAL '{int(value.total_seconds())} seconds'"


def hypertable_ddl(source: str) -> list[str]:
    """The tick table as a hypertable (existing rows moved into chunks), compressed by symbol."""
    ticks, chunk = tick_table(source), interval_sql(DEFAULT_CHUNK)
    return [
        f"SELECT create_hypertable('{ticks}', by_range('time', {chunk}),"
        " if_not_exists => TRUE, migrate_data => TRUE)",
        f"""DO $$ BEGIN
            IF NOT EXISTS (SELECT FROM timescaledb_information.hypertable_compression_settings
                           WHERE hypertable = '{ticks}'::regclass AND segmentby = 'symbol') THEN
                ALTER TABLE {ticks} SET (timescaledb.compress, timescaledb.compress_segmentby = 'symbol',
                                         timescaledb.compress_orderby = 'time, id');
            END IF;
        END $$""",
    ]


def policy_ddl(source: str, policy: TickPolicy, chunk: timedelta) -> list[str]:
    """Chunk size, compression, retention and the 1m refresh window of a source, as `policy` says.

    The 1m aggregate never refreshes further back than the retention: a refresh over dropped
    ticks would empty its bars. Without retention it refreshes whatever was invalidated.
    """
    ticks, bars = tick_table(source), bar_table(source)
    statements = [
        f"SELECT set_chunk_time_interval('{ticks}', {interval_sql(chunk)})",
        f"SELECT remove_compression_policy('{ticks}', if_exists => TRUE)",
        f"SELECT add_compression_policy('{ticks}', compress_after => {interval_sql(chunk)})",
        f"SELECT remove_retention_policy('{ticks}', if_exists => TRUE)",
        f"SELECT remove_continuous_aggregate_policy('{bars}', if_exists => TRUE)",
        f"SELECT add_continuous_aggregate_policy('{bars}', start_offset => {interval_sql(policy.retention)},"
        f" end_offset => INTERVAL '{ONE_MINUTE_LAG}', schedule_interval => INTERVAL '1 minute',"
        " initial_start => now() + INTERVAL '1 minute')",
    ]
    if policy.retention is not None:
        statements.append(
            f"SELECT add_retention_policy('{ticks}', drop_after => {interval_sql(policy.retention)})"
        )
    return statements


def aggregate_ddl(source: str) -> list[str]:
    """1m bars from the ticks and each wider width from the one below: real-time continuous
    aggregates (rows not yet materialised are aggregated at query time), each with its policy."""
    ticks = tick_table(source)
    one_minute = f"""CREATE MATERIALIZED VIEW IF NOT EXISTS {bar_table(source)}
        WITH (timescaledb.continuous, timescaledb.materialized_only = false) AS
        SELECT time_bucket(INTERVAL '1 minute', time) AS bucket, symbol,
               first(price, time) AS open, max(price) AS high, min(price) AS low,
               last(price, time) AS close, sum(size) AS volume, count(*) AS trades,
               min(time) AS first_time, max(time) AS last_time
        FROM {ticks} GROUP BY 1, symbol WITH NO DATA"""
    statements = [one_minute]  # its refresh policy follows the retention: policy_ddl
    for level, (width, interval, parent, schedule, lag) in enumerate(ROLLUPS, start=1):
        table, below = bar_table(source, width), bar_table(source, parent)
        statements += [
            f"""CREATE MATERIALIZED VIEW IF NOT EXISTS {table}
            WITH (timescaledb.continuous, timescaledb.materialized_only = false) AS
            SELECT time_bucket(INTERVAL '{interval}', bucket) AS bucket, symbol,
                   first(open, bucket) AS open, max(high) AS high, min(low) AS low,
                   last(close, bucket) AS close, sum(volume) AS volume, sum(trades)::bigint AS trades,
                   min(first_time) AS first_time, max(last_time) AS last_time
            FROM {below} GROUP BY 1, symbol WITH NO DATA""",
            # First run one schedule from now, a minute per level apart: after the level below.
            f"SELECT add_continuous_aggregate_policy('{table}', start_offset => NULL,"
            f" end_offset => INTERVAL '{lag}', schedule_interval => INTERVAL '{schedule}',"
            f" initial_start => now() + INTERVAL '{schedule}' + INTERVAL '{level} minutes',"
            " if_not_exists => TRUE)",
        ]
    return statements


@dataclass
class Schema:
    """What exists in the database; source tables are created on first use.

    `policy` is applied to every source ensured (the storage service passes the settings');
    without one, a new hypertable gets the defaults and an existing one keeps its own.
    """

    timescale: bool = False
    sources: set[str] = field(default_factory=set)
    policy: TickPolicy | None = None

    async def ensure_source(self, conn: asyncpg.Connection, source: str) -> None:
        if source in self.sources:
            return
        async with conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock($1)", SCHEMA_LOCK)
            await conn.execute(tick_table_ddl(source))
            if self.timescale:
                await self._ensure_timescale(conn, source)
            else:
                await conn.execute(rollup_bar_table_ddl(source))
        self.sources.add(source)
        log.info("tables ready", extra={"source": source, "timescale": self.timescale})

    async def _ensure_timescale(self, conn: asyncpg.Connection, source: str) -> None:
        new = not await conn.fetchval(
            "SELECT EXISTS (SELECT FROM timescaledb_information.hypertables"
            " WHERE hypertable_schema = current_schema() AND hypertable_name = $1)",
            tick_table(source),
        )
        if await _relkind(conn, bar_table(source)) == "r":
            # A data directory made on plain PostgreSQL: its rolled-up bars are derived from the
            # ticks, so the continuous aggregate replaces them (computed at query time at first).
            log.info("upgrading a plain-PostgreSQL source to TimescaleDB", extra={"source": source})
            await conn.execute(f"DROP TABLE {bar_table(source)}")
        for statement in hypertable_ddl(source) + aggregate_ddl(source):
            await conn.execute(statement)
        if new or self.policy is not None:
            rate = await observed_tick_rate(conn, tick_table(source))
            chunk = DEFAULT_CHUNK if rate is None else chunk_interval(rate)
            for statement in policy_ddl(source, self.policy or TickPolicy(), chunk):
                await conn.execute(statement)


async def observed_tick_rate(conn: asyncpg.Connection, ticks: str) -> float | None:
    """Ticks per second in the newest complete chunk (the planner's row estimate), if any."""
    row = await conn.fetchrow(
        "SELECT format('%I.%I', chunk_schema, chunk_name) AS chunk, range_end - range_start AS span"
        " FROM timescaledb_information.chunks WHERE hypertable_schema = current_schema()"
        " AND hypertable_name = $1 AND range_end < now() ORDER BY range_end DESC LIMIT 1",
        ticks,
    )
    if row is None:
        return None
    rows = await conn.fetchval("SELECT approximate_row_count($1::regclass)", row["chunk"])
    return rows / row["span"].total_seconds() if rows else None


async def refresh_bars(conn: asyncpg.Connection, source: str) -> None:
    """Materialise now what a bulk write into the past (backfill, migrate, clean, restore)
    invalidated in a source's TimescaleDB bars, 1m first, as far as the policies would (the
    buckets still filling stay aggregated at query time). Outside a transaction (TimescaleDB's
    rule); nothing to do on plain PostgreSQL."""
    lags = {"1m": ONE_MINUTE_LAG, **{width: lag for width, _, _, _, lag in ROLLUPS}}
    for width in BAR_WIDTHS:
        table = bar_table(source, width)
        if await _relkind(conn, table) == "v":
            await conn.execute(
                f"CALL refresh_continuous_aggregate('{table}', NULL, now() - INTERVAL '{lags[width]}')"
            )


async def _relkind(conn: asyncpg.Connection, name: str) -> str | None:
    return await conn.fetchval(
        "SELECT relkind::text FROM pg_class"
        " WHERE relname = $1 AND relnamespace = current_schema()::regnamespace",
        name,
    )


async def timescale_available(conn: asyncpg.Connection) -> bool:
    """Enable TimescaleDB when the server has it; False on plain PostgreSQL.

    A database that already uses the extension on a server that cannot load it is an
    error: its hypertables and aggregates are unreadable there.
    """
    available = await conn.fetchval("SELECT 1 FROM pg_available_extensions WHERE name = 'timescaledb'")
    if not available:
        if await conn.fetchval("SELECT 1 FROM pg_extension WHERE extname = 'timescaledb'"):
            raise SchemaError(
                "this database uses TimescaleDB, but its server cannot load the extension "
                "(`make timescaledb` builds it for the embedded server)"
            )
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


async def ensure_schema(
    conn: asyncpg.Connection, sources: tuple[str, ...] = ("synthetic",), policy: TickPolicy | None = None
) -> Schema:
    schema = Schema(timescale=await timescale_available(conn), policy=policy)
    if policy is not None and policy.retention is not None and not schema.timescale:
        log.warning("TICK_RETENTION needs TimescaleDB: plain PostgreSQL keeps every tick")
    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock($1)", SCHEMA_LOCK)
        await conn.execute(COMMON_DDL + AUDIT_DDL + EQUITY_DDL)
    for source in sources:
        await schema.ensure_source(conn, source)
    return schema
