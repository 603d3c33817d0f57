"""Which data sources exist: the tick tables found in the database catalog.

A source named in a request is looked up here before any query, so an unknown
name is a 404 and a table name is never formed from what a caller typed.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import asyncpg

from tradebot.api import queries
from tradebot.common import timescaledb
from tradebot.common.models import validate_source_name
from tradebot.common.tables import BAR_WIDTHS, TICK_TABLE_PREFIX, bar_table, tick_table

REFRESH_SECONDS = 10.0


class UnknownName(LookupError):
    """A source or symbol that is not in the database; the message names it."""


@dataclass(frozen=True)
class SourceTables:
    """A source's tick table, its 1-minute bars, and the tables of wider bars (TimescaleDB's
    hierarchical aggregates, by width) that exist."""

    source: str
    ticks: str
    bars: str | None
    wider_bars: dict[str, str] = field(default_factory=dict)


def sources_from_tables(names: list[str]) -> dict[str, SourceTables]:
    """Pure: the sources whose tick table exists, with their bar tables that exist too."""
    present = set(names)
    found = {}
    for name in sorted(present):
        source = name.removeprefix(TICK_TABLE_PREFIX)
        if name.startswith(TICK_TABLE_PREFIX) and is_source_name(source):
            bars = bar_table(source)
            wider = {w: bar_table(source, w) for w in BAR_WIDTHS[1:] if bar_table(source, w) in present}
            found[source] = SourceTables(source, tick_table(source), bars if bars in present else None, wider)
    return found


def is_source_name(name: str) -> bool:
    try:
        validate_source_name(name)
    except ValueError:
        return False
    return True


class SourceCatalog:
    """The sources and the database's backend, re-read at most every few seconds and on a miss."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool
        self.sources: dict[str, SourceTables] = {}
        self.timescale = False
        self.backend = "unknown"
        self._read_at = -REFRESH_SECONDS

    async def refresh(self) -> None:
        async with self.pool.acquire() as conn:
            names = [row["name"] for row in await conn.fetch(queries.SOURCE_TABLES)]
            extension, self.backend = await timescaledb.read_backend(conn)
        self.timescale = extension is not None
        self.sources = sources_from_tables(names)
        self._read_at = time.monotonic()

    async def all(self) -> dict[str, SourceTables]:
        if time.monotonic() - self._read_at > REFRESH_SECONDS:
            await self.refresh()
        return self.sources

    async def get(self, source: str) -> SourceTables:
        """The tables of a source; UnknownName (a 404) when it has none, after one fresh look."""
        if source not in await self.all():
            await self.refresh()
        if source not in self.sources:
            known = ", ".join(self.sources) or "none yet"
            raise UnknownName(f"unknown source {source!r}; known sources: {known}")
        return self.sources[source]
