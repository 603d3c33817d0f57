"""Backtest throughput, data loading included: stored 1-minute bars and stored ticks through the
default strategies and the paper broker (`tradebot backtest`'s own code path), against a naive
loop in the same run and backtrader's published figure.

* ours: rows streamed from PostgreSQL by a cursor (bars from a provider-bar table, as
  `--replay provider-bars` reads them), each bar replayed as its OHLC path (4 trades),
  the live StrategyRunner and PaperBroker; events/s and bars/s per core (one process);
* where the time goes: the same rows fetched only, then made into ticks, then run;
* naive: rows fetched one by one, a model object per event, moving averages recomputed from
  the whole price list at every bar, a dict for a broker;
* anchor: backtrader's ~15,000 bars/s (its own 2-million-candle test on CPython).

Defaults follow the issue (10 million bars over 100 symbols, 10 million ticks); `--bars` and
`--ticks` scale it down for a quick look. Prints the machine load beside every figure.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg

from tradebot.backfill.store import provider_bar_ddl, provider_bar_table
from tradebot.backtest.data import bars_as_ticks, stored_bars, stored_ticks
from tradebot.backtest.run import Backtest
from tradebot.common.models import PriceTick
from tradebot.common.settings import load_settings
from tradebot.common.tables import tick_table
from tradebot.execution.paper import PaperBroker
from tradebot.local.embedded import EmbeddedPostgres
from tradebot.storage.schema import ensure_schema
from tradebot.strategy.registry import build_strategies

SOURCE = "bench"
START = datetime(2025, 1, 2, 14, 30, tzinfo=UTC)
SYMBOLS = 100
BACKTRADER_BARS_PER_S = 15_000


def load() -> str:
    return f"load {os.getloadavg()[0]:.2f}"


async def seed(conn: asyncpg.Connection, bars: int, ticks: int) -> None:
    """`bars` 1-minute bars over SYMBOLS symbols and `ticks` ticks, by COPY (a random walk each)."""
    import random

    rng = random.Random(1)
    minutes = bars // SYMBOLS
    rows = []
    prices = [100.0 + i for i in range(SYMBOLS)]
    for minute in range(minutes):
        bucket = START + timedelta(minutes=minute)
        for s in range(SYMBOLS):
            open_ = prices[s]
            close = open_ * (1 + rng.gauss(0, 0.002))
            high, low = max(open_, close) * 1.0005, min(open_, close) * 0.9995
            prices[s] = close
            rows.append((bucket, f"S{s:03d}", open_, high, low, close, 100.0, 4, bucket, bucket))
        if len(rows) >= 200_000:
            await conn.copy_records_to_table(provider_bar_table(SOURCE), records=rows)
            rows = []
    if rows:
        await conn.copy_records_to_table(provider_bar_table(SOURCE), records=rows)
    rows, prices = [], [100.0 + i for i in range(SYMBOLS)]
    for n in range(ticks):
        s = n % SYMBOLS
        prices[s] *= 1 + rng.gauss(0, 0.0005)
        moment = START + timedelta(milliseconds=100 * n)
        rows.append((moment, f"S{s:03d}", round(prices[s], 4), 10.0, None, None, 10.0, f"t{n}", "trade"))
        if len(rows) >= 200_000:
            await conn.copy_records_to_table(tick_table(SOURCE), records=rows)
            rows = []
    if rows:
        await conn.copy_records_to_table(tick_table(SOURCE), records=rows)


def ours(url: str, replay: str, end: datetime):
    settings = load_settings(database_url=url)
    strategies = build_strategies(settings.strategies, settings.strategy_params)
    backtest = Backtest(strategies, PaperBroker.from_settings(settings), settings.starting_cash, START, end)

    async def feed() -> None:
        conn = await asyncpg.connect(url)
        chunk: list[PriceTick] = []
        if replay == "bars":
            bars = stored_bars(conn, SOURCE, None, START, end, provider=True)
            source = (t async for bar in bars for t in bars_as_ticks([bar], SOURCE))
        else:
            source = stored_ticks(conn, SOURCE, None, START, end)
        async for tick in source:
            chunk.append(tick)
            if len(chunk) >= 20_000:
                backtest.feed(chunk)
                chunk = []
        backtest.feed(chunk)
        await conn.close()

    began = time.perf_counter()
    asyncio.run(feed())
    result = backtest.finish()
    return result.events, time.perf_counter() - began, result


async def stages(url: str, replay: str, end: datetime) -> dict[str, float]:
    """Seconds to fetch the rows only, and to fetch them and make the ticks."""
    conn = await asyncpg.connect(url)
    table, column = (
        (provider_bar_table(SOURCE), "bucket") if replay == "bars" else (tick_table(SOURCE), "time")
    )
    began = time.perf_counter()
    async with conn.transaction():
        query = f"SELECT * FROM {table} WHERE {column} < $1 ORDER BY {column}, symbol"
        async for _ in conn.cursor(query, end, prefetch=20_000):
            pass
    fetched = time.perf_counter() - began
    began = time.perf_counter()
    if replay == "bars":
        async for bar in stored_bars(conn, SOURCE, None, START, end, provider=True):
            list(bars_as_ticks([bar], SOURCE))
    else:
        async for _ in stored_ticks(conn, SOURCE, None, START, end):
            pass
    made = time.perf_counter() - began
    await conn.close()
    return {"fetch rows": fetched, "+ make ticks": made}


async def naive(url: str, bars: int) -> float:
    """Bars/s of the first-version loop over the first `bars` stored bars."""
    conn = await asyncpg.connect(url)
    closes: dict[str, list[float]] = {}
    position: dict[str, float] = {}
    cash, seen = 100_000.0, 0
    began = time.perf_counter()
    async with conn.transaction():
        cursor = await conn.cursor(f"SELECT * FROM {provider_bar_table(SOURCE)} ORDER BY bucket, symbol")
        while seen < bars:
            row = await cursor.fetchrow()  # one row per round trip
            if row is None:
                break
            seen += 1
            tick = PriceTick(
                id=f"b{seen}", source=SOURCE, symbol=row["symbol"], time=row["bucket"], price=row["close"]
            )
            history = closes.setdefault(tick.symbol, [])
            history.append(tick.price)
            if len(history) >= 30:
                fast, slow = sum(history[-10:]) / 10, sum(history[-30:]) / 30
                if fast > slow and tick.symbol not in position and cash > tick.price * 10:
                    position[tick.symbol], cash = tick.price, cash - tick.price * 10
                elif fast < slow and tick.symbol in position:
                    cash += tick.price * 10
                    del position[tick.symbol]
    await conn.close()
    return seen / (time.perf_counter() - began)


def main(bars: int, ticks: int, naive_bars: int) -> None:
    with tempfile.TemporaryDirectory(prefix="tradebot-bench-") as tmp:
        server = EmbeddedPostgres(Path(tmp) / "pg")
        url = server.start()
        try:

            async def prepare() -> None:
                conn = await asyncpg.connect(url)
                await ensure_schema(conn, (SOURCE,))
                await conn.execute(provider_bar_ddl(SOURCE))  # a plain table, with or without TimescaleDB
                began = time.perf_counter()
                await seed(conn, bars, ticks)
                print(f"seeded {bars:,} bars ({SYMBOLS} symbols) and {ticks:,} ticks in "
                      f"{time.perf_counter() - began:.0f} s ({load()})\n")  # fmt: skip
                await conn.close()

            asyncio.run(prepare())
            bars_end = START + timedelta(minutes=bars // SYMBOLS)
            ticks_end = START + timedelta(milliseconds=100 * ticks)
            print(
                f"machine: {os.cpu_count()} cores; one process; the default strategies (sma_crossover, rsi)\n"
            )
            events, seconds, result = ours(url, "bars", bars_end)
            bar_rate = bars / seconds
            rate = events / seconds
            print(f"ours   bars : {bar_rate:>10,.0f} bars/s ({rate:,.0f} events/s, {events:,} events, "
                  f"{seconds:.1f} s, {len(result.fills):,} fills; {load()})")  # fmt: skip
            events, seconds, result = ours(url, "ticks", ticks_end)
            print(f"ours   ticks: {events / seconds:>10,.0f} ticks/s ({events:,} ticks, {seconds:.1f} s, "
                  f"{len(result.fills):,} fills; {load()})")  # fmt: skip
            for replay, end, count in (("bars", bars_end, bars * 4), ("ticks", ticks_end, ticks)):
                parts = asyncio.run(stages(url, replay, end))
                fetch, make = count / parts["fetch rows"], count / parts["+ make ticks"]
                print(
                    f"where  {replay:5}: fetch rows {fetch:,.0f} events/s; "
                    f"fetch + make ticks {make:,.0f} events/s"
                )
            slow = asyncio.run(naive(url, naive_bars))
            print(f"\nnaive  bars : {slow:>10,.0f} bars/s (first {naive_bars:,} bars; {load()})")
            anchor = BACKTRADER_BARS_PER_S
            goal = bar_rate / 1_000_000
            print(f"ratio  ours / naive = {bar_rate / slow:.1f}x; ours / backtrader's ~{anchor:,} bars/s = "
                  f"{bar_rate / anchor:.2f}x; goal 1,000,000 bars/s = {goal:.3f}x")  # fmt: skip
        finally:
            server.stop()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--bars", type=int, default=10_000_000, help="1-minute bars (over 100 symbols)")
    parser.add_argument("--ticks", type=int, default=10_000_000, help="ticks")
    parser.add_argument("--naive-bars", type=int, default=50_000, help="bars for the naive loop")
    arguments = parser.parse_args()
    main(arguments.bars, arguments.ticks, arguments.naive_bars)
