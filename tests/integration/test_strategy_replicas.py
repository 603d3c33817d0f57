"""Strategy replicas as real processes on real Redis: the same recorded ticks give the same signals
whatever the replica count, across SIGKILL + restart, and across a change of REPLICA_COUNT."""

from __future__ import annotations

import os
import signal
import subprocess
from collections import Counter
from datetime import UTC, datetime, timedelta

import orjson
import pytest
import redis as sync_redis

from support.services import service_process, stop_process, wait_for
from tradebot.common import keys, wire
from tradebot.common.models import PriceTick, TradeSignal
from tradebot.market_data.synthetic import SyntheticMarket
from tradebot.strategy.registry import STRATEGY_CLASSES, build_strategies
from tradebot.strategy.runner import StrategyRunner

pytestmark = pytest.mark.integration

SHARDS = 4
SYMBOLS = [f"S{i:02d}" for i in range(16)]
START = datetime(2026, 1, 5, 14, 30, tzinfo=UTC)
PARAMS = {
    "sma_crossover": {"fast": 3, "slow": 8},
    "rsi": {"period": 5},
    "bollinger": {"period": 8},
    "donchian_breakout": {"entry": 6, "exit": 3},
}
ENV = {
    "TICK_SHARDS": str(SHARDS),
    "STRATEGIES": ",".join(STRATEGY_CLASSES),
    "STRATEGY_PARAMS": orjson.dumps(PARAMS).decode(),
    "STRATEGY_CHECKPOINT_SECONDS": "0.5",
    # Bars close by trades only: a shard left idle while the test waits (a lease expiring) must not
    # close its last bars by the clock, which an uninterrupted run would not do in the same time.
    "BAR_CLOSE_GRACE": "600",
    "LOG_LEVEL": "WARNING",
    "PROBE_PORT": "0",
}


def recorded_ticks(rounds: int, start_round: int = 0) -> list[PriceTick]:
    """A reproducible market: every symbol trades every 5 s of event time (12 trades a bar)."""
    market = SyntheticMarket(SYMBOLS, 5.0, seed=11)
    ticks = []
    for index in range(start_round + rounds):
        batch = market.next_ticks(len(SYMBOLS), START + timedelta(seconds=5 * index))
        if index >= start_round:
            ticks.extend(batch)
    return ticks


def closing_ticks(after: datetime) -> list[PriceTick]:
    """One late trade per symbol, two minutes on: closes every bar before it by trade, deterministically."""
    return [
        PriceTick(
            id=f"close-{s}", source="synthetic", symbol=s, time=after + timedelta(minutes=2), price=100.0
        )
        for s in SYMBOLS
    ]


def expected_signal_ids(ticks: list[PriceTick]) -> set[str]:
    """What one runner per shard emits in-process: the reference every process layout must match."""
    ids: set[str] = set()
    runners = [StrategyRunner(build_strategies(STRATEGY_CLASSES, PARAMS), 600.0) for _ in range(SHARDS)]
    for tick in ticks:
        ids |= {s.id for s in runners[keys.tick_shard(tick.symbol, SHARDS)].on_tick(tick)}
    return ids


def publish(client: sync_redis.Redis, ticks: list[PriceTick]) -> None:
    pipe = client.pipeline(transaction=False)
    for tick in ticks:
        pipe.xadd(keys.tick_stream(keys.tick_shard(tick.symbol, SHARDS), SHARDS), wire.encode(tick))
    pipe.execute()


def covered(client: sync_redis.Redis) -> bool:
    """Every shard's last entry has its signals published."""
    progress = client.hgetall(keys.STRATEGY_PROGRESS)
    for shard in range(SHARDS):
        last = client.xrevrange(keys.tick_stream(shard, SHARDS), count=1)
        if last and progress.get(str(shard).encode()) != last[0][0]:
            return False
    return True


def published_signals(client: sync_redis.Redis) -> list[TradeSignal]:
    return [wire.decode(fields) for _, fields in client.xrange(keys.SIGNALS)]  # type: ignore[misc]


def replica(
    redis_url: str, index: int, count: int, name: str | None = None, **extra: str
) -> subprocess.Popen:
    env = {**ENV, "REDIS_URL": redis_url, "REPLICA_INDEX": str(index), "REPLICA_COUNT": str(count),
           "CONSUMER_NAME": name or f"strategy-{index}", **extra}  # fmt: skip
    return service_process("strategy", env, stdout=subprocess.DEVNULL)


@pytest.fixture
def client(redis_url):
    connection = sync_redis.Redis.from_url(redis_url)
    yield connection
    connection.close()


def assert_exactly(signals: list[TradeSignal], expected: set[str]) -> None:
    counts = Counter(s.id for s in signals)
    assert not [i for i, n in counts.items() if n > 1], "a signal was published twice"
    assert set(counts) == expected


@pytest.mark.parametrize("replicas", [1, 2, 4])
def test_one_two_and_four_replicas_emit_the_identical_signal_set(redis_url, client, replicas):
    ticks = recorded_ticks(240)  # 20 minutes of event time, 3,840 ticks
    ticks += closing_ticks(ticks[-1].time)
    expected = expected_signal_ids(ticks)
    assert len(expected) > 50
    publish(client, ticks)
    processes = [replica(redis_url, k, replicas) for k in range(replicas)]
    try:
        wait_for("every shard covered", lambda: covered(client), timeout=120)
        assert_exactly(published_signals(client), expected)
        heartbeats = {key.decode() for key in client.keys(keys.HEARTBEAT_PATTERN)}
        assert heartbeats == {keys.heartbeat_key(f"strategy-{k}") for k in range(replicas)}
    finally:
        for process in processes:
            assert stop_process(process) == 0


def test_sigkill_and_restart_emit_the_uninterrupted_set(redis_url, client):
    """The kill lands where the test puts it, not where it races for: past a checkpoint by a whole
    stretch of published signals, and in the middle of the stream."""
    ticks = recorded_ticks(900)  # 75 minutes of event time, 14,400 ticks
    ticks += closing_ticks(ticks[-1].time)
    first, second, third = ticks[:4800], ticks[4800:9600], ticks[9600:]
    expected = expected_signal_ids(ticks)
    publish(client, first)
    warm = replica(redis_url, 0, 1)
    wait_for("the first third covered", lambda: covered(client))
    assert stop_process(warm) == 0  # a clean stop checkpoints every shard at the end of the first third
    checkpoints = [client.get(keys.strategy_checkpoint_key(n)) for n in range(SHARDS)]
    assert all(checkpoints)

    # No further checkpoint: the restart must rebuild the second third's state from the stream
    # without publishing its signals again. Small batches, so the third takes many reads.
    killed = replica(redis_url, 0, 1, BATCH_SIZE="5", STRATEGY_CHECKPOINT_SECONDS="3600")
    publish(client, second)
    wait_for("the second third covered", lambda: covered(client))
    publish(client, third)
    os.killpg(killed.pid, signal.SIGKILL)
    killed.wait(timeout=10)
    assert not covered(client), "the kill came too late to test anything"
    assert [client.get(keys.strategy_checkpoint_key(n)) for n in range(SHARDS)] == checkpoints

    restarted = replica(redis_url, 0, 1, BATCH_SIZE="5")
    try:
        wait_for("every shard covered after the restart", lambda: covered(client), timeout=180)
        assert_exactly(published_signals(client), expected)
    finally:
        assert stop_process(restarted) == 0


def test_changing_the_replica_count_loses_and_duplicates_nothing(redis_url, client):
    """A StatefulSet going from 2 to 3 replicas: new pods start while old ones still run, the
    old ones are replaced in reverse ordinal order — one of them killed outright."""
    first_half, second_half = recorded_ticks(300), recorded_ticks(300, start_round=300)
    ticks = first_half + second_half + closing_ticks(second_half[-1].time)
    expected = expected_signal_ids(ticks)
    publish(client, first_half)
    old = [replica(redis_url, k, 2) for k in range(2)]
    wait_for("the first half covered by two replicas", lambda: covered(client), timeout=120)
    new = [replica(redis_url, 2, 3)]  # owns shard 2, still held by old replica 0: it waits
    publish(client, second_half[: len(second_half) // 2])
    os.killpg(old[1].pid, signal.SIGKILL)  # old replica 1 dies without handing anything back
    old[1].wait(timeout=10)
    new.append(replica(redis_url, 1, 3))  # same identity as old replica 1: takes its shards at once
    assert stop_process(old[0]) == 0  # a clean stop hands its shards over at once
    new.append(replica(redis_url, 0, 3))
    publish(client, second_half[len(second_half) // 2 :] + closing_ticks(second_half[-1].time))
    try:
        wait_for("everything covered by three replicas", lambda: covered(client), timeout=180)
        assert_exactly(published_signals(client), expected)
        owners = {n: client.get(keys.strategy_lease_key(n)).decode().split("/")[0] for n in range(SHARDS)}
        assert owners == {0: "strategy-0", 1: "strategy-1", 2: "strategy-2", 3: "strategy-0"}
    finally:
        for process in new:
            assert stop_process(process) == 0
