"""Each stage of the pipeline alone, with today's code and the code of issue 18 side by side.

The baseline is the code as it was when issue 18 measured it (`--baseline`, a git revision,
exported to a temporary directory); each side runs in its own process against the same real
Redis and PostgreSQL, one after the other. Figures are CPU µs per tick (the process's own
user + system time, and the server's where a server does the work), so they hold up better
than wall time on a shared machine; the load average is printed beside them.

Usage: python bench/stages.py [--baseline 147ee8d] [--ticks 50000]
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
BASELINE = "147ee8d"  # main when issue 18 was filed
SYMBOLS = ["AAPL", "MSFT", "AMZN", "GOOG", "TSLA", "NVDA", "META", "JPM", "V", "NFLX",
           "AMD", "INTC", "ORCL", "CRM", "ADBE", "QCOM", "TXN", "IBM", "CSCO", "PEP"]  # fmt: skip
STAGES = (
    ("feed", "SyntheticMarket.next_ticks"),
    ("encode", "wire encode (one entry per tick today, batches of 100 now)"),
    ("decode", "wire decode"),
    ("consumer_decode", "Consumer._decode, 5,000 ticks a batch, as a service runs it"),
    ("consumer_decode_nogc", "the same with the collector disabled"),
    ("publish", "TickPublisher.publish, 5,000 a call: client"),
    ("publish_redis", "  redis-server"),
    ("read_ack", "Consumer.read + ack, 5,000 a read: client"),
    ("read_ack_redis", "  redis-server"),
    ("write", "BatchWriter.write, 50,000 a batch: client"),
    ("write_postgres", "  postgres"),
    ("write_rows_per_s", "  rows/s (wall)"),
    ("copy_postgres", "reference: COPY into the same indexes, postgres"),
    ("evaluate", "the default strategies on a tick"),
)


# ---------------------------------------------------------------------------- one side (child)
def load() -> str:
    return "load {:.2f} {:.2f} {:.2f}".format(*os.getloadavg())


def cpu() -> float:
    return time.process_time()


def server_cpu(pid: int) -> float:
    import psutil

    times = psutil.Process(pid).cpu_times()
    return times.user + times.system


async def measure(
    run: Callable[[], Awaitable[int]], repeat: int = 5, server: int | None = None
) -> tuple[float, float | None]:
    """Best-of-`repeat` CPU µs per tick of this process, and the server's over all the repeats
    (the kernel counts a process's CPU in 10 ms ticks: one short run can read as zero)."""
    best, server_time, total = float("inf"), 0.0, 0
    for _ in range(repeat):
        mine, theirs = cpu(), server_cpu(server) if server else 0.0
        ticks = await run()
        best = min(best, (cpu() - mine) / ticks * 1e6)
        if server:
            server_time += server_cpu(server) - theirs
        total += ticks
    return best, (server_time / total * 1e6 if server else None)


async def child(redis_url: str, redis_pid: int, database_url: str, total: int) -> dict[str, float]:
    import asyncpg

    from tradebot.common import bus, wire
    from tradebot.common.connections import connect_redis
    from tradebot.common.settings import Settings
    from tradebot.market_data.publishing import TickPublisher
    from tradebot.market_data.synthetic import SyntheticMarket
    from tradebot.storage.schema import ensure_schema
    from tradebot.storage.writer import BatchWriter, tick_spec

    batched = hasattr(wire, "encode_batch")
    settle = getattr(__import__("tradebot.common.service", fromlist=["settle_heap"]), "settle_heap", None)
    market = SyntheticMarket(SYMBOLS, seconds_per_tick=0.001, seed=1)
    moment = datetime.now(UTC)
    ticks = []
    for _ in range(total // 100):
        moment += timedelta(milliseconds=2)
        ticks += market.next_ticks(100, moment)
    results: dict[str, float] = {}

    async def feed() -> int:
        fresh = SyntheticMarket(SYMBOLS, seconds_per_tick=0.001, seed=2)
        return len([t for _ in range(total // 5000) for t in fresh.next_ticks(5000, moment)])

    def encode_all() -> list[dict]:
        if batched:
            return [
                wire.encode_batch(ticks[i : i + wire.MAX_BATCH]) for i in range(0, len(ticks), wire.MAX_BATCH)
            ]
        return [wire.encode(t) for t in ticks]

    encoded = encode_all()

    async def encode() -> int:
        encode_all()
        return len(ticks)

    async def decode() -> int:
        if batched:
            return sum(len(wire.decode_entry(fields).messages) for fields in encoded)
        return len([wire.decode(fields) for fields in encoded])

    results["feed"], _ = await measure(feed)
    results["encode"], _ = await measure(encode)
    results["decode"], _ = await measure(decode)

    redis = connect_redis(redis_url)
    per_read = 5000 // (wire.MAX_BATCH if batched else 1)
    entries = [(f"{i}-1".encode(), fields) for i, fields in enumerate(encoded, start=1)]
    consumer = bus.Consumer(redis, "bench", "bench", ["ticks"])

    async def consumer_decode() -> int:
        decoded = 0
        for start in range(0, len(entries), per_read):
            decoded += len(await consumer._decode([(b"ticks", entries[start : start + per_read])]))
        return decoded

    if settle is not None:
        settle()  # what the services do at start (new code only)
    results["consumer_decode"], _ = await measure(consumer_decode)
    gc.disable()
    results["consumer_decode_nogc"], _ = await measure(consumer_decode)
    gc.enable()

    await redis.flushall()
    publisher = TickPublisher(redis, maxlen=10_000_000)

    async def publish() -> int:
        for start in range(0, len(ticks), 5000):
            await publisher.publish(ticks[start : start + 5000])
        return len(ticks)

    results["publish"], results["publish_redis"] = await measure(publish, repeat=3, server=redis_pid)

    mine, server_time, reads = float("inf"), 0.0, 0
    for attempt in range(3):  # read + ack alone: the stream is filled before the clock starts
        await redis.delete("ticks")
        await publish()
        reader = bus.Consumer(redis, f"read{attempt}", "bench", ["ticks"], count=5000, block_ms=1)
        await reader.setup()
        reader._own_pending_cursor.clear()
        started, server_started, read = cpu(), server_cpu(redis_pid), 0
        while deliveries := await reader.read():
            await reader.ack(deliveries)
            read += len(deliveries)
        mine = min(mine, (cpu() - started) / read * 1e6)
        server_time, reads = server_time + server_cpu(redis_pid) - server_started, reads + read
    results["read_ack"], results["read_ack_redis"] = mine, server_time / reads * 1e6
    await redis.aclose()

    conn = await asyncpg.connect(database_url)
    schema = await ensure_schema(conn)
    writer = BatchWriter(conn, schema)
    backend = await conn.fetchval("SELECT pg_backend_pid()")
    source = SyntheticMarket(SYMBOLS, seconds_per_tick=0.001, seed=3)

    def batches(count: int) -> list[list]:
        nonlocal moment
        made = []
        for _ in range(count):
            batch = []
            for _ in range(500):
                moment += timedelta(milliseconds=2)
                batch += source.next_ticks(100, moment)
            made.append(batch)
        return made

    to_write, walls = batches(5), []

    async def write() -> int:
        batch = to_write.pop()
        started = time.perf_counter()
        await writer.write(batch)
        walls.append(time.perf_counter() - started)
        return len(batch)

    results["write"], results["write_postgres"] = await measure(write, server=backend)
    results["write_rows_per_s"] = 50_000 / min(walls)
    spec = tick_spec("synthetic", schema.timescale)
    await conn.execute("CREATE TABLE copy_reference (LIKE price_ticks_synthetic INCLUDING ALL)")

    to_copy = [[spec.record(t) for t in batch] for batch in batches(5)]

    async def copy() -> int:
        records = to_copy.pop()
        async with conn.transaction():
            await conn.copy_records_to_table("copy_reference", records=records, columns=spec.columns)
        return len(records)

    _, results["copy_postgres"] = await measure(copy, server=backend)
    await conn.close()

    evaluate_one = strategy_evaluator(Settings(_env_file=None))

    async def evaluate() -> int:
        for tick in ticks:
            evaluate_one(tick)
        return len(ticks)

    results["evaluate"], _ = await measure(evaluate)
    return results


def strategy_evaluator(settings: Any) -> Callable[[Any], object]:
    """The default strategies on one tick, as the strategy service runs them (its API moved:
    `StrategyService.evaluate` then, `StrategyRunner.on_tick` since the strategy replicas)."""
    try:
        from tradebot.strategy.registry import build_strategies
        from tradebot.strategy.runner import StrategyRunner
    except ImportError:
        from tradebot.strategy.service import StrategyService

        service = StrategyService(settings)
        return lambda tick: service.evaluate(tick, None)
    runner = StrategyRunner(build_strategies(settings.strategies, settings.strategy_params), 60.0)
    return runner.on_tick


# ---------------------------------------------------------------------------- both sides (parent)
def export(revision: str, into: Path) -> Path:
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", revision, "services"], check=True,
                             capture_output=True).stdout  # fmt: skip
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive, check=True)
    return into / "services"


def run_side(services: Path, env: dict[str, str], database_url: str, ticks: int) -> dict[str, float]:
    output = subprocess.run(
        [sys.executable, __file__, "--child", database_url, "--ticks", str(ticks)],
        env={**os.environ, **env, "PYTHONPATH": str(services)},
        check=True, capture_output=True, text=True,
    ).stdout  # fmt: skip
    return json.loads(output.strip().splitlines()[-1])


async def create_database(server_url: str, name: str) -> str:
    import asyncpg

    conn = await asyncpg.connect(server_url)
    await conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
    await conn.execute(f'CREATE DATABASE "{name}"')
    await conn.close()
    head, _, query = server_url.partition("?")
    return f"{head.rsplit('/', 1)[0]}/{name}" + (f"?{query}" if query else "")


def main(arguments: argparse.Namespace) -> None:
    from tradebot.local.embedded import EmbeddedPostgres, EmbeddedRedis

    with tempfile.TemporaryDirectory(prefix="tradebot-stages-") as tmp:
        base = export(arguments.baseline, Path(tmp))
        redis, postgres = EmbeddedRedis(Path(tmp) / "redis"), EmbeddedPostgres(Path(tmp) / "pg")
        env = {"BENCH_REDIS_URL": redis.start(), "LOG_LEVEL": "WARNING"}
        env["BENCH_REDIS_PID"] = str(redis._server.pid)
        server_url = postgres.start()
        try:
            print(f"stages, {arguments.ticks:,} ticks each; today = {arguments.baseline}, new = this tree"
                  f" ({os.cpu_count()} cores, {load()})\n")  # fmt: skip
            today = run_side(
                base, env, asyncio.run(create_database(server_url, "bench_today")), arguments.ticks
            )
            new = run_side(ROOT / "services", env, asyncio.run(create_database(server_url, "bench_new")),
                           arguments.ticks)  # fmt: skip
        finally:
            redis.stop()
            postgres.stop()
    print(f"{'stage (CPU µs per tick)':<62}{'today':>10}{'new':>10}{'today/new':>11}")
    for key, label in STAGES:
        old, now = today.get(key), new.get(key)
        if old is None or now is None:
            continue
        ratio = (now / old) if key.endswith("rows_per_s") else (old / now if now else float("inf"))
        digits = 0 if key.endswith("rows_per_s") else 2
        print(f"{label:<62}{old:>10,.{digits}f}{now:>10,.{digits}f}{ratio:>10.1f}x")
    print(f"\n({load()} after)")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--baseline", default=BASELINE, help="git revision of today's code")
    parser.add_argument("--ticks", type=int, default=50_000, help="ticks per stage")
    parser.add_argument("--child", metavar="DATABASE_URL", help=argparse.SUPPRESS)
    arguments = parser.parse_args()
    if arguments.child:
        figures = asyncio.run(child(os.environ["BENCH_REDIS_URL"], int(os.environ["BENCH_REDIS_PID"]),
                                    arguments.child, arguments.ticks))  # fmt: skip
        print(json.dumps(figures))
    else:
        main(arguments)
