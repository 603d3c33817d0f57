"""End-to-end pipeline benchmark: each service in its own process, real Redis and PostgreSQL.

Prints, for this machine:
  1. sustained ticks/s persisted end to end (market data → Redis → storage → PostgreSQL,
     with strategy and execution consuming the same ticks), and that nothing was lost;
  2. tick-to-signal latency p50/p99 at a steady 2,000 ticks/s;
  3. the same load through the naive path (per-tick XADD, per-row INSERT) as a baseline ratio.

Usage: python bench/pipeline.py [--rate 25000] [--seconds 20]
(raise --rate until it reports "fell behind" to find this machine's ceiling)
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import asyncpg

sys.path.insert(0, str(Path(__file__).resolve().parent))

import naive
from tradebot.common import keys, wire
from tradebot.common.connections import connect_redis
from tradebot.local.embedded import EmbeddedPostgres, EmbeddedRedis
from tradebot.storage.schema import ensure_schema

SYMBOLS = "AAPL,MSFT,AMZN,GOOG,TSLA,NVDA,META,JPM,V,NFLX,AMD,INTC,ORCL,CRM,ADBE,QCOM,TXN,IBM,CSCO,PEP"
SERVICES = ("storage", "strategy", "execution", "market_data")


def start_services(env: dict[str, str], names=SERVICES) -> list[subprocess.Popen]:
    return [
        subprocess.Popen(
            [sys.executable, "-m", "tradebot", "service", name],
            env={**os.environ, **env},
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        for name in names
    ]


def stop(processes: list[subprocess.Popen]) -> None:
    for process in processes:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
    for process in processes:
        process.wait(timeout=30)


async def reset(redis_url: str, database_url: str) -> None:
    redis = connect_redis(redis_url)
    await redis.flushall()
    await redis.aclose()
    conn = await asyncpg.connect(database_url)
    await conn.execute(
        "DROP TABLE IF EXISTS price_ticks_synthetic, price_bars_1m_synthetic, price_ticks_naive"
    )
    await ensure_schema(conn, ("synthetic", "naive"))
    await conn.close()


async def count_rows(conn: asyncpg.Connection, table: str) -> int:
    return await conn.fetchval(f"SELECT count(*) FROM {table}")


async def throughput(env: dict[str, str], rate: int, seconds: float) -> dict:
    """Offer `rate` ticks/s; measure rows persisted per second in the steady window."""
    conn = await asyncpg.connect(env["DATABASE_URL"])
    redis = connect_redis(env["REDIS_URL"])
    consumers = start_services({**env, "TICKS_PER_SECOND": str(rate)}, SERVICES[:3])
    producer = start_services({**env, "TICKS_PER_SECOND": str(rate)}, SERVICES[3:])
    try:
        await asyncio.sleep(3)  # warm-up
        first, t0 = await count_rows(conn, "price_ticks_synthetic"), time.monotonic()
        await asyncio.sleep(seconds)
        last, t1 = await count_rows(conn, "price_ticks_synthetic"), time.monotonic()
        backlog = await redis.xlen(keys.TICKS) - last  # published but not yet stored, at the window's end
        stop(producer)
        published = await redis.xlen(keys.TICKS)
        drain_started = time.monotonic()
        while await count_rows(conn, "price_ticks_synthetic") < published:
            if time.monotonic() - drain_started > 120:
                break
            await asyncio.sleep(0.2)
        stored = await count_rows(conn, "price_ticks_synthetic")
    finally:
        stop(consumers + producer)
        await redis.aclose()
        await conn.close()
    return {
        "persisted_per_s": (last - first) / (t1 - t0),
        "published": published,
        "stored": stored,
        "backlog": backlog,
    }


async def latency(env: dict[str, str], rate: int, seconds: float) -> list[float]:
    """Tick-to-signal: from the tick's creation to its signal arriving at a downstream reader."""
    redis = connect_redis(env["REDIS_URL"])
    settings = {
        **env,
        "TICKS_PER_SECOND": str(rate),
        "STRATEGY_PARAMS": '{"sma_crossover": {"fast": 2, "slow": 5, "input": "trades"}}',
        "MIN_SIGNAL_STRENGTH": "0",
        "COOLDOWN_SECONDS": "0",
    }
    processes = start_services(settings, ("strategy", "market_data"))
    samples: list[float] = []
    try:
        last_id = "$"
        await asyncio.sleep(2)
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            response = await redis.xread({keys.SIGNALS: last_id}, count=1000, block=500)
            arrived = datetime.now(UTC)
            for _, entries in response or []:
                for entry_id, fields in entries:
                    last_id = entry_id
                    signal_ = wire.decode(fields)
                    samples.append((arrived - signal_.tick_time).total_seconds() * 1000)
    finally:
        stop(processes)
        await redis.aclose()
    return samples


def _run(coroutine_factory, *args):
    return asyncio.run(coroutine_factory(*args))


async def baseline(env: dict[str, str], rate: int, seconds: float) -> dict:
    """The same offered load through the naive path, each side in its own process."""
    symbols = SYMBOLS.split(",")
    with multiprocessing.get_context("spawn").Pool(2) as pool:
        stored_result = pool.apply_async(_run, (naive.store, env["REDIS_URL"], env["DATABASE_URL"], seconds))
        produced_result = pool.apply_async(_run, (naive.produce, env["REDIS_URL"], symbols, rate, seconds))
        conn = await asyncpg.connect(env["DATABASE_URL"])
        await asyncio.sleep(3)  # warm-up, as for the pipeline
        first, t0 = await count_rows(conn, "price_ticks_naive"), time.monotonic()
        await asyncio.sleep(seconds - 4)
        last, t1 = await count_rows(conn, "price_ticks_naive"), time.monotonic()
        await conn.close()
        produced = produced_result.get(timeout=seconds + 60)
        stored = stored_result.get(timeout=seconds + 60)
    return {"persisted_per_s": (last - first) / (t1 - t0), "published": produced, "stored": stored}


def percentile(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[q - 1] if len(values) > 1 else float("nan")


async def main(rate: int, seconds: float, latency_rate: int) -> None:
    with tempfile.TemporaryDirectory(prefix="tradebot-bench-") as tmp:
        redis_server, postgres_server = EmbeddedRedis(Path(tmp) / "redis"), EmbeddedPostgres(Path(tmp) / "pg")
        env = {
            "REDIS_URL": redis_server.start(),
            "DATABASE_URL": postgres_server.start(),
            "SYMBOLS": SYMBOLS,
            "BATCH_SIZE": "5000",
            "LOG_LEVEL": "WARNING",
        }
        try:
            print(f"machine: {os.cpu_count()} cores; each service in its own process\n")
            await reset(env["REDIS_URL"], env["DATABASE_URL"])
            ours = await throughput(env, rate, seconds)
            lost = ours["published"] - ours["stored"]
            kept_up = "kept up" if ours["backlog"] < rate else "fell behind"
            print(
                f"pipeline  offered {rate:>7,} ticks/s → persisted {ours['persisted_per_s']:>9,.0f} ticks/s"
                f" ({kept_up}: {ours['backlog']:,} not yet stored at the end of the window)\n"
                f"          published {ours['published']:,}, stored {ours['stored']:,}, lost {lost:,}"
            )

            await reset(env["REDIS_URL"], env["DATABASE_URL"])
            samples = await latency(env, latency_rate, seconds)
            print(f"latency   tick→signal at {latency_rate:,} ticks/s: p50 {percentile(samples, 50):.2f} ms,"
                  f" p99 {percentile(samples, 99):.2f} ms over {len(samples):,} signals")  # fmt: skip

            await reset(env["REDIS_URL"], env["DATABASE_URL"])
            slow = await baseline(env, rate, seconds)
            print(
                f"baseline  naive per-tick XADD + per-row INSERT: persisted {slow['persisted_per_s']:>9,.0f}"
                f" ticks/s (published {slow['published']:,}, stored {slow['stored']:,} in the same time)"
            )
            print(f"\nratio     pipeline / naive = {ours['persisted_per_s'] / slow['persisted_per_s']:.1f}x")
        finally:
            redis_server.stop()
            postgres_server.stop()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rate", type=int, default=25_000, help="offered ticks/s for the throughput runs")
    parser.add_argument("--seconds", type=float, default=20, help="measurement window per run")
    parser.add_argument("--latency-rate", type=int, default=2_000, help="ticks/s for the latency run")
    arguments = parser.parse_args()
    asyncio.run(main(arguments.rate, arguments.seconds, arguments.latency_rate))
