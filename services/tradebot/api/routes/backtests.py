"""Backtest runs: the stored ones (from `tradebot backtest`, sweeps, the Backtest resource or
here), and new ones started here, bounded in size, run in worker processes."""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime, timedelta
from typing import Annotated, Any, Literal

import orjson
from fastapi import APIRouter, Depends, HTTPException, Path, Query
from pydantic import BaseModel, Field, field_validator

from tradebot.api.auth import require_read, require_write
from tradebot.api.deps import NOT_FOUND, Moment, State, ticker
from tradebot.api.ranges import RequestProblem
from tradebot.api.sources import UnknownName
from tradebot.backtest.jobs import MAX_RUNNING, BacktestRequest
from tradebot.backtest.store import BACKTESTS_DDL, BACKTESTS_TABLE, fail_run, start_run
from tradebot.storage.schema import ensure_tables
from tradebot.strategy.registry import StrategyConfigError, build_strategies

log = logging.getLogger(__name__)
router = APIRouter(tags=["backtests"], dependencies=[Depends(require_read)])
MAX_SYMBOLS = 20
MAX_DAYS = 31
MAX_EVENTS = 2_000_000
"""Ticks (or bars) one run may replay: a few seconds of work; larger runs are `tradebot backtest`'s."""
COLUMNS = "id, created_at, status, error, source, strategy, params, symbols, start_time, end_time, metrics"
_tasks: set[asyncio.Task] = set()  # runs in flight (a task is only weakly referenced by the loop)


class BacktestRun(BaseModel):
    id: int
    created_at: datetime
    status: Literal["running", "done", "failed"]
    error: str | None = Field(None, description="why a failed run failed")
    source: str
    strategy: str
    params: dict[str, Any]
    symbols: list[str]
    start_time: datetime
    end_time: datetime
    metrics: dict[str, Any] = Field(description="the figures of `tradebot backtest --json`")


class BacktestReport(BacktestRun):
    equity: list[Annotated[list[datetime | float], Field(min_length=2, max_length=2)]] = Field(
        description="[time, equity] pairs, thinned to 5,000 points"
    )  # not a tuple: its OpenAPI form (items as a list) is not a valid 3.1 schema
    trades: list[dict[str, Any]] = Field(description="round trips: entry, exit, P&L, fees, exit reason")


class NewBacktest(BaseModel):
    strategy: str = Field(max_length=64, description="e.g. sma_crossover (see `tradebot strategies list`)")
    params: dict[str, Any] = Field(default_factory=dict, description="the strategy's parameters")
    source: str = Field("synthetic", max_length=31, pattern=r"^[a-z][a-z0-9_]{0,30}$")
    symbols: list[str] | None = Field(None, max_length=MAX_SYMBOLS, description="default: every symbol")
    start: Moment
    end: Moment
    replay: Literal["ticks", "bars"] = "ticks"
    cash: float | None = Field(None, gt=0, le=1e12, description="default STARTING_CASH")

    @field_validator("symbols")
    @classmethod
    def _tickers(cls, value: list[str] | None) -> list[str] | None:
        return sorted({ticker(s) for s in value}) if value else None


def _run(row: Any) -> dict[str, Any]:
    found = dict(row)
    for name in ("params", "metrics", "equity", "trades"):
        if isinstance(found.get(name), str):
            found[name] = orjson.loads(found[name])
    return found


@router.get("/backtests", response_model=list[BacktestRun], summary="Backtest runs, newest first")
async def backtests(
    state: State,
    strategy: Annotated[str | None, Query(max_length=64, description="only this strategy")] = None,
    limit: Annotated[int, Query(ge=1, le=1_000)] = 100,
) -> list[dict[str, Any]]:
    async with state.store.pool.acquire() as conn:
        await ensure_tables(conn, BACKTESTS_DDL)
        rows = await conn.fetch(
            f"SELECT {COLUMNS} FROM {BACKTESTS_TABLE} WHERE $1::text IS NULL OR strategy = $1"
            " ORDER BY created_at DESC, id DESC LIMIT $2",
            strategy, limit,
        )  # fmt: skip
    return [_run(row) for row in rows]


@router.get(
    "/backtests/{run_id}", response_model=BacktestReport, responses=NOT_FOUND,
    summary="One run: metrics, equity curve and trades",
)  # fmt: skip
async def backtest(state: State, run_id: Annotated[int, Path(ge=1, le=2**63 - 1)]) -> dict[str, Any]:
    async with state.store.pool.acquire() as conn:
        await ensure_tables(conn, BACKTESTS_DDL)
        row = await conn.fetchrow(
            f"SELECT {COLUMNS}, equity, trades FROM {BACKTESTS_TABLE} WHERE id = $1", run_id
        )
    if row is None:
        raise UnknownName(f"no backtest {run_id}")
    return _run(row)


@router.post(
    "/backtests", status_code=202, response_model=BacktestRun,
    responses={**NOT_FOUND, 400: {"description": "the body is not JSON"}, 401: {"description": "no token"},
               429: {"description": f"{MAX_RUNNING} backtests are running already"}},
    summary=f"Start a backtest ({MAX_SYMBOLS} symbols, {MAX_DAYS} days at most); poll GET /backtests/{{id}}",
)  # fmt: skip
async def start_backtest(state: State, body: NewBacktest, _: Annotated[str, Depends(require_write)]) -> dict:
    if body.end <= body.start:
        raise RequestProblem(f"empty range: end {body.end.isoformat()} is not after start", ("body", "end"))
    if body.end - body.start > timedelta(days=MAX_DAYS):
        raise RequestProblem(
            f"at most {MAX_DAYS} days per run (use `tradebot backtest` for more)", ("body", "start")
        )
    try:
        [strategy] = build_strategies([body.strategy], {body.strategy: body.params})
    except StrategyConfigError as error:
        raise RequestProblem(str(error), ("body", "params")) from None
    tables = await state.catalog.get(body.source)  # 404 naming an unknown source
    table, column = (tables.ticks, "time") if body.replay == "ticks" else (tables.bars, "bucket")
    if table is None:
        raise RequestProblem(
            f"source {body.source!r} has no bars yet (replay ticks instead)", ("body", "replay")
        )
    async with state.store.pool.acquire() as conn:
        events = await conn.fetchval(
            f"SELECT count(*) FROM (SELECT 1 FROM {table} WHERE {column} >= $1 AND {column} < $2"
            " AND ($3::text[] IS NULL OR symbol = ANY($3)) LIMIT $4) counted",
            body.start, body.end, body.symbols, MAX_EVENTS + 1,
        )  # fmt: skip
    if events > MAX_EVENTS:
        raise RequestProblem(
            f"more than {MAX_EVENTS:,} {body.replay} in that range: narrow it or the symbols, "
            "or run `tradebot backtest`", ("body", "end"),
        )  # fmt: skip
    if state.backtests.full:
        raise HTTPException(429, f"{MAX_RUNNING} backtests are running; try again when one ends")
    params = strategy.params.model_dump(mode="json")
    request = BacktestRequest(
        body.strategy, params, body.source, body.symbols, body.start, body.end, body.replay,
        body.cash or state.settings.starting_cash,
    )  # fmt: skip
    async with state.store.pool.acquire() as conn:
        run_id = await start_run(
            conn,
            body.source,
            body.strategy,
            {body.strategy: params},
            body.symbols or [],
            body.start,
            body.end,
        )
        row = await conn.fetchrow(f"SELECT {COLUMNS} FROM {BACKTESTS_TABLE} WHERE id = $1", run_id)
    task = asyncio.create_task(_run_in_background(state, request, run_id))
    _tasks.add(task)
    task.add_done_callback(_tasks.discard)
    return _run(row)


async def _run_in_background(state: State, request: BacktestRequest, run_id: int) -> None:
    try:
        await state.backtests.run(state.settings, request, run_id)
    except Exception as error:  # the run's own words, stored for whoever polls it
        log.warning("backtest failed", extra={"id": run_id, "error": str(error)})
        async with state.store.pool.acquire() as conn:
            await fail_run(conn, run_id, f"{type(error).__name__}: {error}")
