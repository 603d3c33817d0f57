"""The `backtests` table: every run with its parameters, metrics, equity curve and trades."""

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
"""
MAX_EQUITY_POINTS = 5_000


async def save_backtest(conn: asyncpg.Connection, result: BacktestResult, source: str) -> int:
    """Store one run; returns its id. The equity curve is thinned to MAX_EQUITY_POINTS."""
    await conn.execute(BACKTESTS_DDL)
    summary = result.summary()
    step = max(1, len(result.equity) // MAX_EQUITY_POINTS)
    equity = [[moment.isoformat(), round(value, 4)] for moment, value in result.equity[::step]]
    return await conn.fetchval(
        f"INSERT INTO {BACKTESTS_TABLE} (source, strategy, params, symbols, start_time, end_time, metrics,"
        " equity, trades) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) RETURNING id",
        source, summary["strategy"], orjson.dumps(summary["params"]).decode(), summary["symbols"],
        result.start, result.end, orjson.dumps(summary).decode(), orjson.dumps(equity).decode(),
        orjson.dumps([asdict(t) for t in result.trades]).decode(),
    )  # fmt: skip
