"""The API's SQL, as pure builders over table names that were validated and found in the catalog.

Every value from a request is a bind parameter; only table names (from
`tradebot.common.tables`, checked against the database catalog) and fixed
fragments are formatted in. Each query is shaped to use the (symbol, time)
primary key of its table, so its cost follows the rows returned, not the
table's size.
"""

from __future__ import annotations

from tradebot.common.tables import EQUITY_TABLE, FILLS_TABLE, ORDERS_TABLE, POSITIONS_TABLE, SIGNALS_TABLE

# Bars start on whole UTC minutes/hours/days, whatever the caller's start.
BUCKET_ORIGIN = "TIMESTAMPTZ '2000-01-01 00:00:00+00'"
BAR_COLUMNS = "open, high, low, close, volume, trades"

SOURCE_TABLES = r"""
SELECT c.relname::text AS name
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname = current_schema() AND c.relname LIKE 'price\_%' AND c.relkind IN ('r', 'p', 'v', 'm')
"""

# A continuous aggregate's materialisation hypertable (NULL for any other table).
MATERIALIZATION_OF = """
SELECT format('%I.%I', materialization_hypertable_schema, materialization_hypertable_name)
FROM timescaledb_information.continuous_aggregates
WHERE view_schema = current_schema() AND view_name = $1
"""


def distinct_symbols(table: str) -> str:
    """Every symbol of a table by a loose index scan: one index probe per symbol, not a full scan."""
    return f"""
WITH RECURSIVE walk AS (
    (SELECT symbol FROM {table} ORDER BY symbol LIMIT 1)
    UNION ALL
    SELECT (SELECT t.symbol FROM {table} t WHERE t.symbol > walk.symbol ORDER BY t.symbol LIMIT 1)
    FROM walk WHERE walk.symbol IS NOT NULL
)
SELECT symbol FROM walk WHERE symbol IS NOT NULL
"""


def symbol_exists(table: str) -> str:
    return f"SELECT EXISTS (SELECT 1 FROM {table} WHERE symbol = $1)"


def tick_time_bounds(table: str) -> str:
    return f"SELECT min(time) AS first, max(time) AS last FROM {table}"


def ticks_page(table: str) -> str:
    """$1 symbol, [$2, $3) time range, ($4, $5) the (time, id) to continue after, $6 rows."""
    return f"""
SELECT time, symbol, price, size, bid, ask, volume, id FROM {table}
WHERE symbol = $1 AND time >= $2 AND time < $3 AND (time, id) > ($4, $5)
ORDER BY time, id LIMIT $6
"""


def bars(bar_table: str, stored: bool, timescale: bool) -> str:
    """$1 symbol, [$2, $3) range, $4 bucket width. A table holding bars of that width (`stored`:
    the 1m bars, TimescaleDB's wider aggregates) is read as it is; else its bars are re-bucketed."""
    if stored:
        return f"""
SELECT bucket AS time, {BAR_COLUMNS} FROM {bar_table}
WHERE symbol = $1 AND bucket >= date_bin($4::interval, $2, {BUCKET_ORIGIN}) AND bucket < $3
ORDER BY bucket
"""
    if timescale:
        bucket = "time_bucket($4::interval, bucket)"
        start = "time_bucket($4::interval, $2)"
        first_open, last_close = "first(open, bucket)", "last(close, bucket)"
    else:
        bucket = f"date_bin($4::interval, bucket, {BUCKET_ORIGIN})"
        start = f"date_bin($4::interval, $2, {BUCKET_ORIGIN})"
        first_open = "(array_agg(open ORDER BY bucket))[1]"
        last_close = "(array_agg(close ORDER BY bucket DESC))[1]"
    return f"""
SELECT {bucket} AS time, {first_open} AS open, max(high) AS high, min(low) AS low,
       {last_close} AS close, sum(volume) AS volume, sum(trades)::bigint AS trades
FROM {bar_table}
WHERE symbol = $1 AND bucket >= {start} AND bucket < $3
GROUP BY 1 ORDER BY 1
"""


def bars_from_ticks(tick_table: str) -> str:
    """The same 1-minute bars aggregated from raw ticks: the benchmark's baseline."""
    return f"""
SELECT date_bin(INTERVAL '1 minute', time, {BUCKET_ORIGIN}) AS time,
       (array_agg(price ORDER BY time))[1] AS open, max(price) AS high, min(price) AS low,
       (array_agg(price ORDER BY time DESC))[1] AS close, sum(size) AS volume, count(*) AS trades
FROM {tick_table} WHERE symbol = $1 AND time >= $2 AND time < $3
GROUP BY 1 ORDER BY 1
"""


def latest_prices(tick_table: str) -> str:
    """$1 the symbols: one backward index probe each on (symbol, time)."""
    return f"""
SELECT s.symbol, t.time, t.price, t.bid, t.ask, t.volume
FROM unnest($1::text[]) AS s(symbol)
CROSS JOIN LATERAL (
    SELECT time, price, bid, ask, volume FROM {tick_table}
    WHERE symbol = s.symbol ORDER BY time DESC LIMIT 1
) t
ORDER BY s.symbol
"""


def latest_prices_by_distinct_on(tick_table: str) -> str:
    """The obvious query for the same answer, which sorts the symbols' whole history: the baseline."""
    return f"""
SELECT DISTINCT ON (symbol) symbol, time, price, bid, ask, volume FROM {tick_table}
WHERE symbol = ANY($1::text[]) ORDER BY symbol, time DESC
"""


def day_reference(bar_table: str) -> str:
    """$1 symbols, $2 since: per symbol, the first open and the volume since then."""
    return f"""
SELECT s.symbol, first_bar.open AS reference_price, day.volume
FROM unnest($1::text[]) AS s(symbol)
LEFT JOIN LATERAL (
    SELECT open FROM {bar_table} WHERE symbol = s.symbol AND bucket >= $2 ORDER BY bucket LIMIT 1
) first_bar ON true
LEFT JOIN LATERAL (
    SELECT sum(volume) AS volume FROM {bar_table} WHERE symbol = s.symbol AND bucket >= $2
) day ON true
"""


def recent(table: str, columns: str) -> str:
    """$1 symbol or null, [$2, $3) range, $4 rows; newest first."""
    return f"""
SELECT {columns} FROM {table}
WHERE ($1::text IS NULL OR symbol = $1) AND time >= $2 AND time < $3
ORDER BY time DESC LIMIT $4
"""


SIGNAL_COLUMNS = "id, time, strategy, symbol, side, strength, reason, price, source"
RECENT_SIGNALS = recent(SIGNALS_TABLE, SIGNAL_COLUMNS)
RECENT_ORDERS = recent(
    ORDERS_TABLE, "id, signal_id, time, strategy, symbol, side, quantity, reference_price, status, reason"
)
RECENT_FILLS = recent(FILLS_TABLE, "id, order_id, time, symbol, side, quantity, price, fee, slippage")
POSITIONS = f"""
SELECT symbol, quantity, average_price, realized_pnl, market_price, unrealized_pnl, time
FROM {POSITIONS_TABLE} WHERE $1 OR quantity <> 0 ORDER BY symbol
"""
EQUITY = f"""
SELECT time, equity, cash, realized_pnl, unrealized_pnl, fees_paid, open_positions FROM (
    SELECT * FROM {EQUITY_TABLE} WHERE time >= $1 AND time < $2 ORDER BY time DESC LIMIT $3
) newest ORDER BY time
"""
FILLS_WITH_ORDERS = f"""
SELECT f.id, f.order_id, f.time, f.symbol, f.side, f.quantity, f.price, f.fee, f.slippage,
       o.signal_id, o.time AS order_time, o.strategy, o.reference_price, o.status, o.reason
FROM {FILLS_TABLE} f JOIN {ORDERS_TABLE} o ON o.id = f.order_id
WHERE (f.time, f.id) > ($1, $2) ORDER BY f.time, f.id
"""
