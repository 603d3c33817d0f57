"""The `backtests` table: every run with its parameters, metrics, equity curve and trades.

A run started for someone else carries their tag: `run` (a Kubernetes Backtest's
`<namespace>/<name>/<uid>`) and `run_index` (its parameter set: the Indexed Job's
completion index), which is how the operator finds a sweep's results.
"""

from __future__ import annotations

from dataclasses import asdict

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
"""
MAX_EQUITY_POINTS = 5_000


async def ensure_table(conn: asyncpg.Connection) -> None:
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
) -> int:
    """Store one run (tagged `run`/`run_index`); returns its id. The equity curve is thinned."""
    await ensure_table(conn)
    summary = result.summary()
    step = max(1, len(result.equity) // MAX_EQUITY_POINTS)
    equity = [[moment.isoformat(), round(value, 4)] for moment, value in result.equity[::step]]
    return await conn.fetchval(
        f"INSERT INTO {BACKTESTS_TABLE} (source, strategy, params, symbols, start_time, end_time, metrics,"
        " equity, trades, run, run_index) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) RETURNING id",
        source, summary["strategy"], orjson.dumps(summary["params"]).decode(), summary["symbols"],
        result.start, result.end, orjson.dumps(summary).decode(), orjson.dumps(equity).decode(),
        orjson.dumps([asdict(t) for t in result.trades]).decode(), run, run_index,
    )  # fmt: skip
