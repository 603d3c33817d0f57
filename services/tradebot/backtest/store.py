"""The `backtests` table: every run with its parameters, metrics, equity curve and trades.

A run started for someone else carries their tag: `run` (a Kubernetes Backtest's
`<namespace>/<name>/<uid>`) and `run_index` (its parameter set: the Indexed Job's
completion index), which is how the operator finds a sweep's results.
"""

from __future__ import annotations

from dataclasses import asdict
from datetime import datetime

import asyncpg
import orjson

from tradebot.backtest.run import BacktestResult

BACKTESTS_TABLE = "backtests"
BACKTESTS_DDL = f"""
CREATE TABLE IF NOT EXISTS {BACKTESTS_TABLE} (
    id bigserial PRIMARY KEY,
    created_at timestamptz NOT NULL DEFAULT now(),
    source text NOT NULL,
    strategy text NOT NULL,
    params jsonb NOT NULL,
    symbols text[] NOT NULL,
    start_time timestamptz NOT NULL,
    end_time timestamptz NOT NULL,
    metrics jsonb NOT NULL,
    equity jsonb NOT NULL,
    trades jsonb NOT NULL
);
CREATE INDEX IF NOT EXISTS {BACKTESTS_TABLE}_created ON {BACKTESTS_TABLE} (created_at DESC);
ALTER TABLE {BACKTESTS_TABLE} ADD COLUMN IF NOT EXISTS run text;
ALTER TABLE {BACKTESTS_TABLE} ADD COLUMN IF NOT EXISTS run_index integer;
CREATE INDEX IF NOT EXISTS {BACKTESTS_TABLE}_run ON {BACKTESTS_TABLE} (run, run_index);
ALTER TABLE {BACKTESTS_TABLE} ADD COLUMN IF NOT EXISTS status text NOT NULL DEFAULT 'done';
ALTER TABLE {BACKTESTS_TABLE} ADD COLUMN IF NOT EXISTS error text;
"""
STATUSES = ("running", "done", "failed")
"""A run the API started is `running` until its process stores it (`done`) or gives up (`failed`)."""
MAX_EQUITY_POINTS = 5_000


async def ensure_table(conn: asyncpg.Connection | asyncpg.pool.PoolConnectionProxy) -> None:
    """Create or extend the table; under a lock, since a sweep's pods all start at once."""
    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock(hashtext($1))", BACKTESTS_TABLE)
        await conn.execute(BACKTESTS_DDL)


async def save_backtest(
    conn: asyncpg.Connection,
    result: BacktestResult,
    source: str,
    run: str | None = None,
    run_index: int | None = None,
    run_id: int | None = None,
) -> int:
    """Store one run and return its id: into the `running` row `run_id` (a run the API started)
    when given, else as a new row tagged `run`/`run_index` (an index of a Backtest resource).
    The equity curve is thinned to MAX_EQUITY_POINTS."""
    await ensure_table(conn)
    summary = result.summary()
    step = max(1, len(result.equity) // MAX_EQUITY_POINTS)
    equity = [[moment.isoformat(), round(value, 4)] for moment, value in result.equity[::step]]
    values = (
        source, summary["strategy"], orjson.dumps(summary["params"]).decode(), summary["symbols"],
        result.start, result.end, orjson.dumps(summary).decode(), orjson.dumps(equity).decode(),
        orjson.dumps([asdict(t) for t in result.trades]).decode(),
    )  # fmt: skip
    if run_id is not None:
        await conn.execute(
            f"UPDATE {BACKTESTS_TABLE} SET source = $1, strategy = $2, params = $3, symbols = $4,"
            " start_time = $5, end_time = $6, metrics = $7, equity = $8, trades = $9, status = 'done'"
            " WHERE id = $10",
            *values, run_id,
        )  # fmt: skip
        return run_id
    return await conn.fetchval(
        f"INSERT INTO {BACKTESTS_TABLE} (source, strategy, params, symbols, start_time, end_time, metrics,"
        " equity, trades, run, run_index) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) RETURNING id",
        *values, run, run_index,
    )  # fmt: skip


async def start_run(
    conn: asyncpg.Connection | asyncpg.pool.PoolConnectionProxy, source: str, strategy: str,
    params: dict, symbols: list[str], start: datetime, end: datetime,
) -> int:  # fmt: skip
    """A `running` row for a run about to start; its id is what the caller is given."""
    await ensure_table(conn)
    return await conn.fetchval(
        f"INSERT INTO {BACKTESTS_TABLE} (source, strategy, params, symbols, start_time, end_time, metrics,"
        " equity, trades, status) VALUES ($1, $2, $3, $4, $5, $6, '{}', '[]', '[]', 'running')"
        " RETURNING id",
        source, strategy, orjson.dumps(params).decode(), symbols, start, end,
    )  # fmt: skip


async def fail_run(
    conn: asyncpg.Connection | asyncpg.pool.PoolConnectionProxy, run_id: int, error: str
) -> None:
    await conn.execute(
        f"UPDATE {BACKTESTS_TABLE} SET status = 'failed', error = $2 WHERE id = $1 AND status = 'running'",
        run_id, error[:2000],
    )  # fmt: skip
