"""History API latency on a big tick table, on each backend, each figure beside a naive baseline.

For each backend (--backends: TimescaleDB and plain PostgreSQL, embedded servers; or
DATABASE_URL alone), loads --ticks ticks (default 10 million: 100 symbols, one tick every
5 s each) and prints:
  0. load rate (rows/s), and on-disk bytes per million ticks, uncompressed and (TimescaleDB)
     compressed, after the 1-minute bars are rolled up (plain) or materialised (TimescaleDB);
  1. p50/p99 of bars through the API (HTTP in-process: routing, validation, SQL and JSON) for
     each interval: a day of 1m bars, then 5m/15m/1h/1d over the whole span; and the day of 1m
     bars in SQL vs aggregated from raw ticks (the baseline), as a ratio;
  2. latest prices of 100 symbols through the API, and in SQL as one backward index probe per
     symbol (LATERAL) vs DISTINCT ON (the baseline).

The data stays in --data-dir/<backend> between runs, so a second run measures at once.
Usage: python bench/api.py [--ticks 10000000] [--runs 300] [--backends timescaledb,postgresql]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import secrets
import statistics
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg
import httpx

from tradebot.api import queries
from tradebot.api.app import create_app
from tradebot.api.deps import ApiState
from tradebot.api.service import settle_heap
from tradebot.api.sources import SourceCatalog
from tradebot.api.store import HistoryStore
from tradebot.common.connections import connect_postgres, connect_redis
from tradebot.common.settings import Settings
from tradebot.common.tables import bar_table, tick_table
from tradebot.common.timescaledb import read_backend
from tradebot.local.embedded import EmbeddedPostgres, EmbeddedRedis
from tradebot.storage.schema import ensure_schema, refresh_bars

SOURCE = "synthetic"
BACKENDS = ("timescaledb", "postgresql")
SYMBOLS = 100
TICK_SECONDS = 5
START = datetime(2026, 1, 1, tzinfo=UTC)
LOAD_CHUNK_SYMBOLS = 5


def symbol(index: int) -> str:
    return f"S{index:03d}"


async def load(conn: asyncpg.Connection, ticks: int, timescale: bool) -> None:
    """Generate the ticks in SQL (a random walk per symbol), then roll up their 1-minute bars
    (plain PostgreSQL) or materialise the continuous aggregates (TimescaleDB)."""
    per_symbol = ticks // SYMBOLS
    ticks_table, bars = tick_table(SOURCE), bar_table(SOURCE)
    await conn.execute(f"TRUNCATE {ticks_table}" if timescale else f"TRUNCATE {ticks_table}, {bars}")
    loading = time.monotonic()
    for first in range(0, SYMBOLS, LOAD_CHUNK_SYMBOLS):
        started = time.monotonic()
        await conn.execute(
            f"""
            INSERT INTO {ticks_table} (time, symbol, price, size, bid, ask, volume, id)
            SELECT $1::timestamptz + i * make_interval(secs => $4), 'S' || lpad(s::text, 3, '0'), p,
                   1 + (i % 50), p - 0.01, p + 0.01, i * 25, s || '-' || i
            FROM generate_series($2::int, $3::int) AS s, generate_series(0, $5::int - 1) AS i,
                 LATERAL (SELECT round((50 + s + 10 * sin(i / 700.0 + s) + 3 * sin(i / 37.0))::numeric, 4)
                          ::float8 AS p) AS walk
            ORDER BY s, i
            """,
            START, first, first + LOAD_CHUNK_SYMBOLS - 1, TICK_SECONDS, per_symbol,
        )  # fmt: skip
        print(
            f"  loaded symbols {first}..{first + LOAD_CHUNK_SYMBOLS - 1} "
            f"({LOAD_CHUNK_SYMBOLS * per_symbol:,} ticks, {time.monotonic() - started:.1f} s)",
            flush=True,
        )
    print(f"  load: {per_symbol * SYMBOLS / (time.monotonic() - loading):,.0f} rows/s", flush=True)
    started = time.monotonic()
    if timescale:
        await refresh_bars(conn, SOURCE)
        print(f"  materialised the 1m..1d aggregates ({time.monotonic() - started:.1f} s)", flush=True)
        await conn.execute(f"VACUUM ANALYZE {ticks_table}")
        return
    await conn.execute(
        f"""
        INSERT INTO {bars}
        SELECT date_trunc('minute', time), symbol, (array_agg(price ORDER BY time))[1], max(price),
               min(price), (array_agg(price ORDER BY time DESC))[1], sum(size), count(*), min(time), max(time)
        FROM {ticks_table} GROUP BY 1, 2
        """
    )
    print(f"  rolled up 1-minute bars ({time.monotonic() - started:.1f} s)", flush=True)
    await conn.execute(f"VACUUM ANALYZE {ticks_table}")
    await conn.execute(f"VACUUM ANALYZE {bars}")


async def percentiles(runs: int, call: Callable[[int], Awaitable[object]]) -> tuple[float, float]:
    """p50 and p99 in milliseconds of `runs` calls (after a few warm-up calls)."""
    for i in range(5):
        await call(i)
    samples = []
    for i in range(runs):
        started = time.perf_counter()
        await call(i)
        samples.append((time.perf_counter() - started) * 1000)
    cuts = statistics.quantiles(samples, n=100)
    return cuts[49], cuts[98]


def report(name: str, figures: tuple[float, float], baseline: tuple[float, float] | None = None) -> None:
    line = f"  {name:<58} p50 {figures[0]:8.2f} ms   p99 {figures[1]:8.2f} ms"
    if baseline:
        line += (
            f"   (baseline/ours: p50 ×{baseline[0] / figures[0]:.1f}, p99 ×{baseline[1] / figures[1]:.1f})"
        )
    print(line, flush=True)


async def tick_bytes(conn: asyncpg.Connection, timescale: bool) -> int:
    size = "hypertable_size($1::regclass)" if timescale else "pg_total_relation_size($1::regclass)"
    return int(await conn.fetchval(f"SELECT {size}", tick_table(SOURCE)))


async def prepare(conn: asyncpg.Connection, ticks: int) -> float:
    """Load (once) and report the table's size per million ticks; the days per symbol."""
    schema = await ensure_schema(conn, (SOURCE,))
    table = tick_table(SOURCE)
    estimate = (
        "SELECT approximate_row_count($1::regclass)"
        if schema.timescale
        else "SELECT reltuples::bigint FROM pg_class WHERE oid = $1::regclass"
    )
    have = await conn.fetchval(estimate, table)
    if have < ticks * 0.99:
        print(f"Loading {ticks:,} ticks ({SYMBOLS} symbols, one every {TICK_SECONDS} s each)...", flush=True)
        await load(conn, ticks, schema.timescale)
    count = await conn.fetchval(f"SELECT count(*) FROM {table}")
    per_million = 1_000_000 / count
    if schema.timescale:
        await conn.execute(f"SELECT decompress_chunk(c, if_compressed => TRUE) FROM show_chunks('{table}') c")
        uncompressed = await tick_bytes(conn, True)
        started = time.monotonic()
        await conn.execute(f"SELECT compress_chunk(c) FROM show_chunks('{table}') c")
        compressed = await tick_bytes(conn, True)
        took = time.monotonic() - started
        print(
            f"  ticks on disk per million: {uncompressed * per_million / 2**20:,.1f} MiB uncompressed, "
            f"{compressed * per_million / 2**20:,.1f} MiB compressed "
            f"(×{uncompressed / compressed:.1f} smaller; compressing took {took:.1f} s)",
            flush=True,
        )
        await conn.execute(f"ANALYZE {table}")
    else:
        size = await tick_bytes(conn, False)
        print(
            f"  ticks on disk per million: {size * per_million / 2**20:,.1f} MiB (no compression)", flush=True
        )
    days = (count // SYMBOLS) * TICK_SECONDS / 86_400
    print(f"Tick table: {count:,} rows, {days:.1f} days per symbol.\n", flush=True)
    return days


async def measure(database_url: str, redis_url: str, ticks: int, runs: int) -> None:
    pool = await connect_postgres(database_url, max_size=4)
    conn = await asyncpg.connect(database_url)
    try:
        await ensure_schema(conn, (SOURCE,))  # the extension first, when the server has it
        print(f"=== {(await read_backend(conn))[1]} ===", flush=True)
        days = await prepare(conn, ticks)
    finally:
        await conn.close()

    redis = connect_redis(redis_url)
    token = secrets.token_urlsafe(32)
    settings = Settings(_env_file=None, database_url=database_url, redis_url=redis_url, auth_token=token)
    catalog = SourceCatalog(pool)
    store = HistoryStore(pool, catalog)
    app = create_app(ApiState(settings, catalog, store, redis), lambda: (True, {}), lambda: (True, {}))
    settle_heap()  # as the API service does once it has started
    rng = random.Random(7)
    whole_days = max(1, int(days) - 1)
    day_starts = [START + timedelta(days=rng.randrange(whole_days)) for _ in range(runs + 10)]
    day_symbols = [symbol(rng.randrange(SYMBOLS)) for _ in range(runs + 10)]
    hundred = [symbol(i) for i in range(SYMBOLS)]
    span_end = START + timedelta(days=days)
    widths = {"1m": 60, "5m": 300, "15m": 900, "1h": 3_600, "1d": 86_400}
    whole = (span_end - START).total_seconds()
    day = min(timedelta(days=1), span_end - START)  # the 1m window: a day, or all there is
    expected_bars = {
        w: int(day.total_seconds() // 60) if w == "1m" else -int(-whole // s) for w, s in widths.items()
    }
    bars_sql = queries.bars(bar_table(SOURCE), stored=True, timescale=False)
    baseline_bars_sql = queries.bars_from_ticks(tick_table(SOURCE))
    latest_sql, baseline_latest_sql = (
        queries.latest_prices(tick_table(SOURCE)),
        queries.latest_prices_by_distinct_on(tick_table(SOURCE)),
    )

    transport, headers = httpx.ASGITransport(app=app), {"Authorization": f"Bearer {token}"}
    async with httpx.AsyncClient(transport=transport, base_url="http://api", headers=headers) as http:

        async def api_bars(i: int, interval: str = "1m") -> None:
            start, end = (day_starts[i], day_starts[i] + day) if interval == "1m" else (START, span_end)
            params = {"interval": interval, "start": start.isoformat(), "end": end.isoformat()}
            answer = await http.get(f"/sources/{SOURCE}/symbols/{day_symbols[i]}/bars", params=params)
            bars = answer.content.count(b'"open"')
            assert answer.status_code == 200 and bars == expected_bars[interval], (
                interval,
                bars,
                answer.text[:300],
            )

        async def sql_bars(i: int, sql: str = bars_sql) -> None:
            start = day_starts[i]
            async with pool.acquire() as c:
                rows = await c.fetch(sql, day_symbols[i], start, start + day, timedelta(minutes=1))
            assert len(rows) == expected_bars["1m"]

        async def sql_bars_from_ticks(i: int) -> None:
            start = day_starts[i]
            async with pool.acquire() as c:
                rows = await c.fetch(baseline_bars_sql, day_symbols[i], start, start + day)
            assert len(rows) == expected_bars["1m"]

        async def api_latest(_: int) -> None:
            answer = await http.get(f"/sources/{SOURCE}/prices/latest", params={"symbols": ",".join(hundred)})
            assert answer.status_code == 200 and answer.content.count(b'"price"') == SYMBOLS, answer.text

        async def sql_latest(_: int, sql: str = latest_sql) -> None:
            async with pool.acquire() as c:
                assert len(await c.fetch(sql, hundred)) == SYMBOLS

        print(f"Bars of a random symbol through the API (HTTP, in-process), {runs} runs each:")
        for interval in widths:
            what = "one day" if interval == "1m" else f"{days:.1f} days"
            name = f"GET .../bars?interval={interval} ({what}: {expected_bars[interval]:,} bars)"
            report(name, await percentiles(runs, lambda i, w=interval: api_bars(i, w)))
        print(f"\nOne day of 1-minute bars ({expected_bars['1m']:,} of a random symbol) in SQL, {runs} runs:")
        ours = await percentiles(runs, sql_bars)
        baseline = await percentiles(max(20, runs // 10), sql_bars_from_ticks)
        report("SQL: stored 1-minute bars", ours, baseline)
        report("SQL baseline: aggregate the day's raw ticks", baseline)
        print(f"\nLatest prices of {SYMBOLS} symbols, {runs} runs:")
        ours = await percentiles(runs, sql_latest)
        baseline = await percentiles(max(5, runs // 30), lambda i: sql_latest(i, baseline_latest_sql))
        report(
            "API GET .../prices/latest?symbols=<100> (HTTP, in-process)", await percentiles(runs, api_latest)
        )
        report("SQL: LATERAL, one backward index probe per symbol", ours, baseline)
        report("SQL baseline: DISTINCT ON over the symbols' history", baseline)
    await pool.close()
    await redis.aclose()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--ticks", type=int, default=10_000_000)
    parser.add_argument("--runs", type=int, default=300)
    parser.add_argument("--data-dir", type=Path, default=Path(".tradebot/bench-api"))
    parser.add_argument("--backends", default=",".join(BACKENDS), help="embedded servers to measure, in turn")
    args = parser.parse_args()
    redis = EmbeddedRedis(args.data_dir.resolve() / "redis")
    redis_url = os.environ.get("REDIS_URL") or redis.start()
    try:
        if database_url := os.environ.get("DATABASE_URL"):
            asyncio.run(measure(database_url, redis_url, args.ticks, args.runs))
            return
        for backend in args.backends.split(","):
            server = EmbeddedPostgres(args.data_dir.resolve() / backend, timescaledb=backend == "timescaledb")
            try:
                asyncio.run(measure(server.start(), redis_url, args.ticks, args.runs))
            finally:
                server.stop()
            print()
    finally:
        redis.stop()


if __name__ == "__main__":
    main()
