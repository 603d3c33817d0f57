"""Backtests the API starts: each in a worker process, stored into the row it was given.

The API inserts a `running` row (its id is the answer to POST /backtests), hands the
run to a process pool so the replay never holds the API's event loop, and marks the
row `failed` with the reason if the run raises.
"""

from __future__ import annotations

import asyncio
import multiprocessing
from concurrent.futures import Executor, ProcessPoolExecutor
from dataclasses import dataclass
from datetime import datetime

import asyncpg

from tradebot.common.settings import Settings

MAX_RUNNING = 2
"""Backtests the API runs at once; more are refused (429) rather than queued without bound."""


@dataclass(frozen=True)
class BacktestRequest:
    strategy: str
    params: dict
    source: str
    symbols: list[str] | None
    start: datetime
    end: datetime
    replay: str
    cash: float


def run_into(settings: Settings, request: BacktestRequest, run_id: int) -> None:
    """One run, in a worker process: replay the stored history and store the result as `run_id`."""
    from tradebot.backtest.store import save_backtest
    from tradebot.cli.backtest import History, replay_history
    from tradebot.strategy.registry import build_strategies

    strategies = build_strategies([request.strategy], {request.strategy: request.params})
    history = History(request.source, request.symbols, request.replay, None, request.start, request.end)
    result, _ = replay_history(settings, history, strategies, request.cash, store=False, progress=False)

    async def save() -> None:
        conn = await asyncpg.connect(settings.database_url)
        try:
            await save_backtest(conn, result, request.source, run_id=run_id)
        finally:
            await conn.close()

    asyncio.run(save())


class BacktestRunner:
    """At most MAX_RUNNING runs at a time, in spawned processes (started on first use)."""

    def __init__(self) -> None:
        self._pool: Executor | None = None
        self.running: set[int] = set()

    @property
    def full(self) -> bool:
        return len(self.running) >= MAX_RUNNING

    async def run(self, settings: Settings, request: BacktestRequest, run_id: int) -> None:
        """Run to the end; raises what the run raised."""
        if self._pool is None:
            self._pool = ProcessPoolExecutor(MAX_RUNNING, mp_context=multiprocessing.get_context("spawn"))
        self.running.add(run_id)
        try:
            await asyncio.get_running_loop().run_in_executor(self._pool, run_into, settings, request, run_id)
        finally:
            self.running.discard(run_id)

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
