"""The backfill: every (symbol, kind) of a range, in batches, paced, resumable.

Symbols are taken BACKFILL_BATCH_SIZE at a time; within a batch every (symbol,
kind) pages through the provider while the Pacer keeps at most
BACKFILL_CONCURRENT_REQUESTS requests in flight, each followed by
RATE_LIMIT_DELAY. Progress is measured in time covered, so the ETA means
something before the row count is known.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from tradebot.backfill.store import HistoryStore, row_time
from tradebot.providers.history import HistorySource, Kind

ProgressHook = Callable[[float, int], None]  # (seconds of range newly covered, rows fetched)


@dataclass
class BackfillResult:
    rows: int = 0
    pages: int = 0
    units: int = 0
    skipped: int = 0
    elapsed: float = 0.0
    stats: dict[str, int] = field(default_factory=dict)

    @property
    def rows_per_second(self) -> float:
        return self.rows / self.elapsed if self.elapsed else 0.0


def batches(symbols: Sequence[str], size: int) -> list[list[str]]:
    return [list(symbols[i : i + size]) for i in range(0, len(symbols), size)]


def total_seconds(symbols: Sequence[str], kinds: Sequence[Kind], start: datetime, end: datetime) -> float:
    return len(symbols) * len(kinds) * max(0.0, (end - start).total_seconds())


class Backfill:
    """Runs one backfill; `store=None` fetches without writing (the benchmark)."""

    def __init__(
        self, history: HistorySource, store: HistoryStore | None, on_progress: ProgressHook | None = None
    ) -> None:
        self.history = history
        self.store = store
        self.on_progress = on_progress or (lambda covered, rows: None)
        self._write_lock = asyncio.Lock()
        self.result = BackfillResult()

    async def run(
        self,
        symbols: Sequence[str],
        kinds: Sequence[Kind],
        start: datetime,
        end: datetime,
        batch_size: int,
        resume: bool = True,
    ) -> BackfillResult:
        began = time.monotonic()
        done: dict[tuple[str, str], datetime] = {}
        if self.store is not None:
            if not resume:
                await self.store.clear_checkpoints()
            done = await self.store.checkpoints()
        for batch in batches(symbols, batch_size):
            await asyncio.gather(
                *(
                    self._unit(s, k, max(start, done.get((s, k), start)), start, end)
                    for s in batch
                    for k in kinds
                )
            )
        self.result.elapsed = time.monotonic() - began
        self.result.stats = dict(self.history.http.stats)
        return self.result

    async def _unit(self, symbol: str, kind: Kind, begin: datetime, start: datetime, end: datetime) -> None:
        self.result.units += 1
        if begin >= end:
            self.result.skipped += 1
            self.on_progress((end - start).total_seconds(), 0)
            return
        self.on_progress((begin - start).total_seconds(), 0)
        cursor = begin
        async for rows in self.history.pages(kind, symbol, begin, end):
            newest = max((row_time(row) for row in rows), default=cursor)
            newest = min(max(newest, cursor), end)
            await self._store(kind, symbol, rows, newest)
            self.result.rows += len(rows)
            self.result.pages += 1
            self.on_progress((newest - cursor).total_seconds(), len(rows))
            cursor = newest
        await self._store(kind, symbol, [], end)
        self.on_progress((end - cursor).total_seconds(), 0)

    async def _store(self, kind: Kind, symbol: str, rows: list, checkpoint: datetime) -> None:
        if self.store is None:
            return
        async with self._write_lock:
            await self.store.write(kind, symbol, rows, checkpoint)
