"""End-to-end pipeline benchmark: each service in its own process, real Redis and PostgreSQL.

Prints, for this machine (with the load average beside each figure):
  1. sustained ticks/s persisted end to end (market data → Redis → storage → PostgreSQL, with
     strategy and execution consuming the same ticks), and that nothing was lost or duplicated;
  2. the CPU µs each process spent per tick, and the "sum of the stages' limits" model: what
     one core could carry for each single-threaded stage, what the machine could carry for
     their sum, and so which stage holds the pipeline back and how far it is from the machine;
  3. tick-to-signal latency p50/p99 at a steady 2,000 ticks/s;
  4. the same load through the naive path (per-tick XADD, per-row INSERT) as a baseline ratio;
  5. the stored ticks' bytes on disk per million, uncompressed and (TimescaleDB) compressed.
Each on both backends in turn (--backends: TimescaleDB and plain PostgreSQL).

Usage: python bench/pipeline.py [--rate 60000] [--seconds 60] [--shards 1] [--backends timescaledb,postgresql]
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
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import asyncpg
import orjson
import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent))

import naive
from tradebot.common import keys, wire
from tradebot.common.connections import connect_redis
from tradebot.local.embedded import EmbeddedPostgres, EmbeddedRedis
from tradebot.storage.schema import ensure_schema

SYMBOLS = "AAPL,MSFT,AMZN,GOOG,TSLA,NVDA,META,JPM,V,NFLX,AMD,INTC,ORCL,CRM,ADBE,QCOM,TXN,IBM,CSCO,PEP"
CONSUMERS = ("storage", "strategy", "execution")
PRODUCER = "market_data"
SINGLE_THREADED = (PRODUCER, *CONSUMERS)  # Python services: one core at most each
WARM_UP = 5.0
DRAIN_LIMIT = 180.0


def load() -> str:
    return "load {:.2f} {:.2f} {:.2f}".format(*os.getloadavg())


def start_services(env: dict[str, str], names) -> dict[str, subprocess.Popen]:
    return {
        name: subprocess.Popen(
            [sys.executable, "-m", "tradebot", "service", name],
            env={**os.environ, **env},
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        for name in names
    }


def stop(processes) -> None:
    for process in processes:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
    for process in processes:
        process.wait(timeout=60)


class CpuMeter:
    """CPU seconds (user + system) of each named group of processes."""

    def __init__(self, groups: dict[str, list[psutil.Process]]) -> None:
        self.groups = groups

    @classmethod
    def of(cls, services: dict[str, subprocess.Popen], redis_pid: int, postmaster_pid: int) -> CpuMeter:
        postmaster = psutil.Process(postmaster_pid)
        groups = {name: [psutil.Process(p.pid)] for name, p in services.items()}
        groups["redis-server"] = [psutil.Process(redis_pid)]
        groups["postgres"] = [postmaster, *postmaster.children(recursive=True)]
        return cls(groups)

    def read(self) -> dict[str, float]:
        seconds = {}
        for name, processes in self.groups.items():
            total = 0.0
            for process in processes:
                try:
                    times = process.cpu_times()
                    total += times.user + times.system
                except psutil.NoSuchProcess:
                    pass
            seconds[name] = total
        return seconds


@dataclass
class Servers:
    redis: EmbeddedRedis
    postgres: EmbeddedPostgres
    env: dict[str, str]

    @property
    def redis_pid(self) -> int:
        return self.redis._server.pid

    @property
    def postmaster_pid(self) -> int:
        return int((self.postgres.data_dir / "postmaster.pid").read_text().split()[0])


async def reset(env: dict[str, str]) -> None:
    redis = connect_redis(env["REDIS_URL"])
    await redis.flushall()
    await redis.aclose()
    conn = await asyncpg.connect(env["DATABASE_URL"])
    await conn.execute(  # ticks first: on TimescaleDB the bars are aggregates over them
        "DROP TABLE IF EXISTS price_ticks_synthetic, price_ticks_naive, trade_signals, orders, fills,"
        " positions CASCADE"
    )
    await conn.execute("DROP TABLE IF EXISTS price_bars_1m_synthetic")
    await ensure_schema(conn, ("synthetic", "naive"))
    await conn.close()


async def tick_bytes_per_million(env: dict[str, str]) -> str:
    """The stored ticks on disk per million: as written, and compressed on TimescaleDB."""
    conn = await asyncpg.connect(env["DATABASE_URL"])
    try:
        rows = await count_rows(conn, "price_ticks_synthetic")
        if not rows:
            return "no ticks stored"
        mib = 1_000_000 / rows / 2**20
        timescale = await conn.fetchval("SELECT count(*) FROM pg_extension WHERE extname = 'timescaledb'")
        if not timescale:
            size = await conn.fetchval("SELECT pg_total_relation_size('price_ticks_synthetic')")
            return f"{size * mib:,.1f} MiB per million ticks (no compression)"
        size = "SELECT hypertable_size('price_ticks_synthetic')"
        before = await conn.fetchval(size)
        await conn.execute("SELECT compress_chunk(c) FROM show_chunks('price_ticks_synthetic') c")
        after = await conn.fetchval(size)
        return (
            f"{before * mib:,.1f} MiB per million ticks uncompressed, {after * mib:,.1f} MiB compressed"
            f" (×{before / after:.1f} smaller)"
        )
    finally:
        await conn.close()


async def count_rows(conn: asyncpg.Connection, table: str) -> int:
    return await conn.fetchval(f"SELECT count(*) FROM {table}")


async def published_ticks(redis) -> int:
    """What market data says it published (its final heartbeat, written as it stops)."""
    raw = await redis.get(keys.heartbeat_key(PRODUCER))
    return int(orjson.loads(raw)["counters"].get("ticks_published", 0)) if raw else 0


async def throughput(servers: Servers, rate: int, seconds: float) -> dict:
    """Offer `rate` ticks/s; measure rows persisted per second and CPU per tick in the steady window."""
    env = {**servers.env, "TICKS_PER_SECOND": str(rate)}
    conn = await asyncpg.connect(env["DATABASE_URL"])
    redis = connect_redis(env["REDIS_URL"])
    services = start_services(env, CONSUMERS)
    services |= start_services(env, (PRODUCER,))
    try:
        await asyncio.sleep(WARM_UP)
        meter = CpuMeter.of(services, servers.redis_pid, servers.postmaster_pid)
        # Each clock is read as its count's snapshot is taken (a count(*) over millions of rows
        # takes a good part of a second: reading the clock after it would stretch the window).
        t0, cpu0, first = time.monotonic(), meter.read(), await count_rows(conn, "price_ticks_synthetic")
        load_during = os.getloadavg()[0]
        await asyncio.sleep(seconds)
        t1, cpu1, last = time.monotonic(), meter.read(), await count_rows(conn, "price_ticks_synthetic")
        load_during = max(load_during, os.getloadavg()[0])
        stop([services.pop(PRODUCER)])
        published = await published_ticks(redis)
        drain_started = time.monotonic()
        while (stored := await count_rows(conn, "price_ticks_synthetic")) < published:
            if time.monotonic() - drain_started > DRAIN_LIMIT:
                break
            await asyncio.sleep(0.1)
        drain = time.monotonic() - drain_started
        distinct = await conn.fetchval("SELECT count(DISTINCT id) FROM price_ticks_synthetic")
        signals = await count_rows(conn, "trade_signals")
    finally:
        stop(services.values())
        await redis.aclose()
        await conn.close()
    persisted = last - first
    return {
        "persisted_per_s": persisted / (t1 - t0),
        "published": published,
        "stored": stored,
        "duplicated": stored - distinct,
        "drain_s": drain,
        "signals": signals,
        "cpu_us_per_tick": {name: (cpu1[name] - cpu0[name]) / persisted * 1e6 for name in cpu0}
        if persisted
        else {},
        "load": load_during,
    }


async def latency(servers: Servers, rate: int, seconds: float) -> list[float]:
    """Tick-to-signal: from the tick's creation to its signal arriving at a downstream reader."""
    redis = connect_redis(servers.env["REDIS_URL"])
    settings = {
        **servers.env,
        "TICKS_PER_SECOND": str(rate),
        "STRATEGY_PARAMS": '{"sma_crossover": {"fast": 2, "slow": 5, "input": "trades"}}',
        "MIN_SIGNAL_STRENGTH": "0",
        "COOLDOWN_SECONDS": "0",
    }
    processes = start_services(settings, ("strategy", PRODUCER))
    samples: list[float] = []
    try:
        last_id = "$"
        await asyncio.sleep(3)
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            response = await redis.xread({keys.SIGNALS: last_id}, count=1000, block=500)
            arrived = datetime.now(UTC)
            for _, entries in response or []:
                for entry_id, fields in entries:
                    last_id = entry_id
                    for signal_ in wire.decode_entry(fields).messages:
                        samples.append((arrived - signal_.tick_time).total_seconds() * 1000)
    finally:
        stop(processes.values())
        await redis.aclose()
    return samples


def _run(coroutine_factory, *args):
    return asyncio.run(coroutine_factory(*args))


async def baseline(servers: Servers, rate: int, seconds: float) -> dict:
    """The same offered load through the naive path, each side in its own process."""
    env, symbols = servers.env, SYMBOLS.split(",")
    with multiprocessing.get_context("spawn").Pool(2) as pool:
        stored_result = pool.apply_async(_run, (naive.store, env["REDIS_URL"], env["DATABASE_URL"], seconds))
        produced_result = pool.apply_async(_run, (naive.produce, env["REDIS_URL"], symbols, rate, seconds))
        conn = await asyncpg.connect(env["DATABASE_URL"])
        await asyncio.sleep(3)  # warm-up, as for the pipeline
        t0, first = time.monotonic(), await count_rows(conn, "price_ticks_naive")
        load_during = os.getloadavg()[0]
        await asyncio.sleep(seconds - 4)
        t1, last = time.monotonic(), await count_rows(conn, "price_ticks_naive")
        load_during = max(load_during, os.getloadavg()[0])
        await conn.close()
        produced = produced_result.get(timeout=seconds + 60)
        stored = stored_result.get(timeout=seconds + 60)
    return {"persisted_per_s": (last - first) / (t1 - t0), "published": produced, "stored": stored,
            "load": load_during}  # fmt: skip


def percentile(values: list[float], q: int) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[q - 1] if len(values) > 1 else float("nan")


def print_model(cpu: dict[str, float], cores: int) -> None:
    """The sum of the stages' limits: which stage holds the pipeline back, and how far from the machine."""
    total = sum(cpu.values())
    print(f"\n{'process':<14}{'CPU µs/tick':>12}{'share':>8}{'one core carries':>20}")
    for name, micros in sorted(cpu.items(), key=lambda item: -item[1]):
        limit = 1e6 / micros if micros > 0 else float("inf")
        print(f"{name:<14}{micros:>12.1f}{micros / total:>8.0%}{limit:>17,.0f}/s")
    machine = cores * 1e6 / total
    single = {name: 1e6 / cpu[name] for name in SINGLE_THREADED if cpu.get(name)}
    slowest = min(single, key=single.get)
    print(f"{'sum':<14}{total:>12.1f}")
    print(
        f"model     the machine ({cores} cores) carries ≈ {machine:,.0f} ticks/s for this sum; the slowest"
        f" single-threaded stage, {slowest}, ≈ {single[slowest]:,.0f}/s\n"
        f"          → the pipeline's limit ≈ {min(machine, single[slowest]):,.0f} ticks/s, held back by"
        f" {'the machine (every core busy)' if machine <= single[slowest] else slowest}"
    )


async def main(arguments: argparse.Namespace) -> None:
    for backend in arguments.backends.split(","):
        await run_backend(arguments, backend)
        print()


async def run_backend(arguments: argparse.Namespace, backend: str) -> None:
    with tempfile.TemporaryDirectory(prefix="tradebot-bench-") as tmp:
        redis_server = EmbeddedRedis(Path(tmp) / "redis")
        postgres_server = EmbeddedPostgres(Path(tmp) / "pg", timescaledb=backend == "timescaledb")
        env = {
            "REDIS_URL": redis_server.start(),
            "DATABASE_URL": postgres_server.start(),
            "SYMBOLS": arguments.symbols,
            "BATCH_SIZE": "20000",
            "LOG_LEVEL": "WARNING",
            "TICK_SHARDS": str(arguments.shards),
        }
        servers = Servers(redis_server, postgres_server, env)
        cores = os.cpu_count() or 1
        try:
            symbols = len(arguments.symbols.split(","))
            print(f"=== {postgres_server.backend} === machine: {cores} cores, {load()}; each service in its"
                  f" own process; {symbols} symbols, {arguments.shards} tick shard(s)\n")  # fmt: skip
            runs = set(arguments.only.split(","))
            ours = {"persisted_per_s": 0.0}
            if "throughput" in runs:
                await reset(env)
                ours = await throughput(servers, arguments.rate, arguments.seconds)
                report_throughput(ours, arguments, cores)
                print(f"on disk   {await tick_bytes_per_million(env)}")
            if "latency" in runs:
                await reset(env)
                samples = await latency(servers, arguments.latency_rate, arguments.latency_seconds)
                p50, p99 = percentile(samples, 50), percentile(samples, 99)
                print(f"\nlatency   tick→signal at {arguments.latency_rate:,} ticks/s: p50 {p50:.2f} ms,"
                      f" p99 {p99:.2f} ms over {len(samples):,} signals ({load()})")  # fmt: skip
            if "baseline" in runs:
                await reset(env)
                slow = await baseline(servers, arguments.rate, arguments.baseline_seconds)
                print(
                    f"baseline  naive per-tick XADD + per-row INSERT: persisted"
                    f" {slow['persisted_per_s']:,.0f} ticks/s (published {slow['published']:,},"
                    f" stored {slow['stored']:,}; load {slow['load']:.2f})"
                )
                if "throughput" in runs:
                    ratio = ours["persisted_per_s"] / max(slow["persisted_per_s"], 1e-9)
                    print(f"\nratio     pipeline / naive = {ratio:,.1f}x  (same run, {load()})")
        finally:
            redis_server.stop()
            postgres_server.stop()


def report_throughput(ours: dict, arguments: argparse.Namespace, cores: int) -> None:
    lost = ours["published"] - ours["stored"]
    kept_up = "kept up" if ours["drain_s"] < 5 else "fell behind"
    print(
        f"pipeline  offered {arguments.rate:,} ticks/s for {arguments.seconds:.0f} s → persisted"
        f" {ours['persisted_per_s']:,.0f} ticks/s (load {ours['load']:.2f})\n"
        f"          {kept_up}: the last ticks were stored {ours['drain_s']:.1f} s after the feed stopped\n"
        f"          published {ours['published']:,}, stored {ours['stored']:,}: lost {lost:,},"
        f" duplicated {ours['duplicated']:,}; {ours['signals']:,} signals stored"
    )
    if ours["cpu_us_per_tick"]:
        if kept_up != "kept up":
            print(
                "          (CPU per tick below is per tick persisted: too high for the stages that ran"
                " ahead of storage; offer a rate the pipeline keeps up with for exact figures)"
            )
        print_model(ours["cpu_us_per_tick"], cores)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--rate",
        type=int,
        default=60_000,
        help="offered ticks/s for the throughput runs (the target, 50,000, with a margin)",
    )
    parser.add_argument("--seconds", type=float, default=60, help="measurement window of the throughput run")
    parser.add_argument("--latency-rate", type=int, default=2_000, help="ticks/s for the latency run")
    parser.add_argument("--latency-seconds", type=float, default=20, help="window of the latency run")
    parser.add_argument("--baseline-seconds", type=float, default=20, help="window of the naive run")
    parser.add_argument("--shards", type=int, default=1, help="TICK_SHARDS")
    parser.add_argument("--symbols", default=SYMBOLS, help="comma-separated symbols")
    parser.add_argument(
        "--only", default="throughput,latency,baseline", help="runs to make (comma-separated)"
    )
    parser.add_argument(
        "--backends", default="timescaledb,postgresql", help="PostgreSQL backends, in turn (comma-separated)"
    )
    asyncio.run(main(parser.parse_args()))
