"""Strategy service throughput and latency, against a naive strategy loop in the same run.

* events/s through one strategy process (the default strategies on 1-minute bars) for 20,
  500 and 5,000 symbols, and the same through 2 processes (2 tick shards, one each) — the
  ticks are queued before the processes start, so the rate is what the strategies consume;
* tick→signal latency p50/p99 at 2,000 ticks/s (a strategy evaluating every trade, so
  every tick can signal), from the moment a tick is published to the moment its signal
  is read back;
* the baseline: a first-version strategy loop — one XREADGROUP, XACK and (on a signal)
  XADD round trip per tick, and moving averages recomputed from a list of prices.

Real processes (`tradebot service strategy`) on an embedded Redis. Prints the machine load.
"""

from __future__ import annotations

import argparse
import asyncio
import bisect
import os
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson

from tradebot.common import keys, wire
from tradebot.common.connections import connect_redis
from tradebot.common.models import PriceTick
from tradebot.local.embedded import EmbeddedRedis
from tradebot.market_data.synthetic import SyntheticMarket

START = datetime(2026, 1, 5, 14, 30, tzinfo=UTC)
NAIVE_STREAM, NAIVE_GROUP = "naive:ticks", "naive-strategy"


def recorded(symbols: int, count: int) -> list[PriceTick]:
    """`count` trades round-robin over `symbols` symbols, one second of event time per round."""
    names = [f"S{i:04d}" for i in range(symbols)]
    market = SyntheticMarket(names, 1.0, seed=3)
    ticks: list[PriceTick] = []
    moment = START
    while len(ticks) < count:
        ticks.extend(market.next_ticks(symbols, moment))
        moment += timedelta(seconds=1)
    return ticks[:count]


def start(env: dict[str, str], replicas: int) -> list[subprocess.Popen]:
    return [
        subprocess.Popen(
            [sys.executable, "-m", "tradebot", "service", "strategy"],
            env={
                **os.environ,
                **env,
                "REPLICA_INDEX": str(k),
                "REPLICA_COUNT": str(replicas),
                "CONSUMER_NAME": f"bench-{k}",
            },
            stdout=subprocess.DEVNULL,
            start_new_session=True,
        )
        for k in range(replicas)
    ]


def stop(processes: list[subprocess.Popen]) -> None:
    for process in processes:
        process.terminate()
    for process in processes:
        process.wait(timeout=30)


async def publish(redis, ticks: list[PriceTick], shards: int) -> list[bytes]:
    ids: list[bytes] = []
    for offset in range(0, len(ticks), 5_000):
        pipe = redis.pipeline(transaction=False)
        for tick in ticks[offset : offset + 5_000]:
            pipe.xadd(keys.tick_stream(keys.tick_shard(tick.symbol, shards), shards), wire.encode(tick))
        ids.extend(await pipe.execute())
    return ids


async def covered(redis, shards: int) -> bool:
    progress = await redis.hgetall(keys.STRATEGY_PROGRESS)
    for shard in range(shards):
        last = await redis.xrevrange(keys.tick_stream(shard, shards), count=1)
        if last and progress.get(str(shard).encode()) != last[0][0]:
            return False
    return True


async def ready(redis, replicas: int) -> None:
    """Until every replica's heartbeat says it owns its shards."""
    while True:
        beats = [await redis.get(keys.heartbeat_key(f"strategy-{k}")) for k in range(replicas)]
        if all(b and orjson.loads(b)["counters"].get("shards_owned") for b in beats):
            return
        await asyncio.sleep(0.1)


def stream_id(entry_id: bytes) -> tuple[int, int]:
    milliseconds, sequence = entry_id.split(b"-")
    return int(milliseconds), int(sequence)


async def consuming(redis, published: dict[int, list[tuple[int, int]]], shards: int) -> int | None:
    """Entries the strategy group has been handed across all shards, once every shard's group has
    begun (Redis 6.2 has no `entries-read`: the count comes from the ids the publisher got back)."""
    read = 0
    for shard in range(shards):
        groups = await redis.xinfo_groups(keys.tick_stream(shard, shards))
        delivered = stream_id(groups[0]["last-delivered-id"]) if groups else (0, 0)
        if delivered == (0, 0):
            return None
        read += bisect.bisect_right(published[shard], delivered)
    return read


async def throughput(env: dict[str, str], symbols: int, count: int, replicas: int) -> float:
    """Ticks/s the processes consume: the ticks wait in their shards before the processes start (so
    the publisher's speed is not measured), counted from the moment every shard is being read."""
    redis = connect_redis(env["REDIS_URL"])
    await redis.flushall()
    shards = 2
    ticks = recorded(symbols, count)
    published: dict[int, list[tuple[int, int]]] = {n: [] for n in range(shards)}
    for tick, entry_id in zip(ticks, await publish(redis, ticks, shards), strict=True):
        published[keys.tick_shard(tick.symbol, shards)].append(stream_id(entry_id))
    processes = start({**env, "TICK_SHARDS": str(shards)}, replicas)
    try:
        while (already := await consuming(redis, published, shards)) is None:  # noqa: ASYNC110
            await asyncio.sleep(0.005)
        began = time.perf_counter()
        while not await covered(redis, shards):  # noqa: ASYNC110 (polling another process's progress)
            await asyncio.sleep(0.02)
        return (count - already) / (time.perf_counter() - began)
    finally:
        stop(processes)
        await redis.aclose()


async def latency(env: dict[str, str], rate: int, seconds: float) -> list[float]:
    """Milliseconds from publishing a tick to reading its signal, at `rate` ticks/s."""
    redis = connect_redis(env["REDIS_URL"])
    await redis.flushall()
    params = {"sma_crossover": {"fast": 2, "slow": 5, "input": "trades"}}
    processes = start({**env, "TICK_SHARDS": "1", "STRATEGIES": "sma_crossover",
                       "STRATEGY_PARAMS": orjson.dumps(params).decode()}, 1)  # fmt: skip
    sent: dict[str, float] = {}
    samples: list[float] = []
    try:
        await ready(redis, 1)
        market = SyntheticMarket([f"S{i:02d}" for i in range(20)], 20 / rate, seed=5)

        async def produce() -> None:
            began, published = time.perf_counter(), 0
            while (elapsed := time.perf_counter() - began) < seconds:
                due = int(elapsed * rate) - published
                if due > 0:
                    ticks = market.next_ticks(due, datetime.now(UTC))
                    pipe = redis.pipeline(transaction=False)
                    for tick in ticks:
                        pipe.xadd(keys.TICKS, wire.encode(tick))
                    now = time.perf_counter()
                    sent.update((tick.id, now) for tick in ticks)
                    await pipe.execute()
                    published += due
                await asyncio.sleep(0.0005)

        async def consume() -> None:
            reader = connect_redis(env["REDIS_URL"])
            last, deadline = "$", time.perf_counter() + seconds + 2
            while time.perf_counter() < deadline:
                reply = await reader.xread({keys.SIGNALS: last}, block=200, count=1_000)
                now = time.perf_counter()
                for _, entries in reply or []:
                    for entry_id, fields in entries:
                        last = entry_id
                        signal = wire.decode(fields)
                        if signal.tick_id in sent:  # type: ignore[attr-defined]
                            samples.append((now - sent[signal.tick_id]) * 1000)  # type: ignore[attr-defined]
            await reader.aclose()

        await asyncio.gather(produce(), consume())
        return samples
    finally:
        stop(processes)
        await redis.aclose()


async def naive(env: dict[str, str], symbols: int, count: int) -> float:
    """The first-version loop: a round trip per tick, averages recomputed from the price history."""
    redis = connect_redis(env["REDIS_URL"])
    await redis.flushall()
    ticks = recorded(symbols, count)
    pipe = redis.pipeline(transaction=False)
    for tick in ticks:
        pipe.xadd(NAIVE_STREAM, wire.encode(tick))
    await pipe.execute()
    await redis.xgroup_create(NAIVE_STREAM, NAIVE_GROUP, id="0")
    history: dict[str, list[float]] = {}
    above: dict[str, bool] = {}
    began, handled = time.perf_counter(), 0
    while handled < count:
        reply = await redis.xreadgroup(NAIVE_GROUP, "naive", {NAIVE_STREAM: ">"}, count=1)
        for entry_id, fields in reply[0][1]:
            tick = wire.decode(fields)
            prices = history.setdefault(tick.symbol, [])  # type: ignore[attr-defined]
            prices.append(tick.price)  # type: ignore[attr-defined]
            if len(prices) >= 30:
                fast, slow = sum(prices[-10:]) / 10, sum(prices[-30:]) / 30
                if above.get(tick.symbol, fast > slow) != (fast > slow):  # type: ignore[attr-defined]
                    await redis.xadd("naive:signals", {b"symbol": tick.symbol.encode()})  # type: ignore[attr-defined]
                above[tick.symbol] = fast > slow  # type: ignore[attr-defined]
            await redis.xack(NAIVE_STREAM, NAIVE_GROUP, entry_id)
            handled += 1
    rate = count / (time.perf_counter() - began)
    await redis.aclose()
    return rate


def percentile(values: list[float], q: int) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[q - 1] if len(values) > 1 else float("nan")


async def main(count: int, latency_rate: int, seconds: float) -> None:
    with tempfile.TemporaryDirectory(prefix="tradebot-bench-") as tmp:
        server = EmbeddedRedis(Path(tmp) / "redis")
        env = {"REDIS_URL": server.start(), "LOG_LEVEL": "WARNING", "BATCH_SIZE": "2000", "PROBE_PORT": "0"}
        try:
            print(f"machine: {os.cpu_count()} cores, load {os.getloadavg()[0]:.2f}; default strategies "
                  f"(sma_crossover, rsi on 1m bars); {count:,} ticks per run\n")  # fmt: skip
            print(f"{'symbols':>8} {'1 process':>14} {'2 processes':>14} {'ratio':>7}")
            for symbols in (20, 500, 5_000):
                one = await throughput(env, symbols, count, 1)
                two = await throughput(env, symbols, count, 2)
                print(f"{symbols:>8,} {one:>10,.0f} ev/s {two:>10,.0f} ev/s {two / one:>6.2f}x")
            baseline = await naive(env, 20, min(count, 20_000))
            one = await throughput(env, 20, count, 1)
            print(f"\nbaseline  naive per-tick loop, 20 symbols: {baseline:,.0f} ev/s; "
                  f"ours {one:,.0f} ev/s = {one / baseline:.1f}x")  # fmt: skip
            samples = await latency(env, latency_rate, seconds)
            print(f"latency   tick→signal at {latency_rate:,} ticks/s: p50 {percentile(samples, 50):.2f} ms, "
                  f"p99 {percentile(samples, 99):.2f} ms over {len(samples):,} signals")  # fmt: skip
            print(f"\nload at the end: {os.getloadavg()[0]:.2f}")
        finally:
            server.stop()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--ticks", type=int, default=200_000, help="ticks per throughput run")
    parser.add_argument("--latency-rate", type=int, default=2_000, help="ticks/s for the latency run")
    parser.add_argument("--seconds", type=float, default=15, help="latency measurement window")
    arguments = parser.parse_args()
    asyncio.run(main(arguments.ticks, arguments.latency_rate, arguments.seconds))
