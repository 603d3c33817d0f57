"""Storage killed mid-batch and restarted (as another pod) loses and duplicates nothing."""

from __future__ import annotations

import signal
from datetime import UTC, datetime

import asyncpg
import pytest

from support.services import eventually, service_process, stop_process
from tradebot.common import keys
from tradebot.market_data.publishing import TickPublisher
from tradebot.market_data.synthetic import SyntheticMarket
from tradebot.storage.schema import ensure_schema

pytestmark = [pytest.mark.integration, pytest.mark.backends]
TICKS = 60_000


async def test_sigkill_mid_batch_then_restart_stores_each_tick_once(redis_url, redis, database_url):
    conn = await asyncpg.connect(database_url)
    await ensure_schema(conn)
    market = SyntheticMarket(["AAPL", "MSFT", "TSLA", "NVDA"], seconds_per_tick=0.01, seed=3)
    publisher = TickPublisher(redis, maxlen=1_000_000)
    ticks = market.next_ticks(TICKS, datetime.now(UTC))
    for start in range(0, TICKS, 5_000):
        await publisher.publish(ticks[start : start + 5_000])
    await publisher.publish(ticks[:2_000])  # an upstream replay: same tick ids again
    env = {"REDIS_URL": redis_url, "DATABASE_URL": database_url, "BATCH_SIZE": "3000"}

    first = service_process("storage", {**env, "CONSUMER_NAME": "storage-pod-a"})
    try:

        async def some_stored() -> bool:
            return await conn.fetchval("SELECT count(*) FROM price_ticks_synthetic") > 0

        await eventually(some_stored, within=60, interval=0.02, what="the first batches")
    finally:
        stop_process(first, signal.SIGKILL)
    stored_at_kill = await conn.fetchval("SELECT count(*) FROM price_ticks_synthetic")
    assert stored_at_kill < TICKS, "killed before the end"
    pending = await redis.xpending(keys.TICKS, "storage")
    assert pending["pending"] > 0, "the killed consumer left entries pending"

    # Another pod takes over: it must reclaim what the dead one left pending.
    second = service_process("storage", {**env, "CONSUMER_NAME": "storage-pod-b", "CLAIM_IDLE_SECONDS": "1"})
    try:

        async def drained() -> bool:
            groups = {g["name"]: g for g in await redis.xinfo_groups(keys.TICKS)}
            info = groups[b"storage"]
            return (
                info["pending"] == 0
                and info["last-delivered-id"] == (await redis.xinfo_stream(keys.TICKS))["last-generated-id"]
            )

        await eventually(drained, within=120, what="the restarted storage to drain the stream")
    finally:
        assert stop_process(second) == 0, "graceful stop on SIGTERM"
    row = await conn.fetchrow(
        "SELECT count(*) AS n, count(DISTINCT id) AS ids, sum(size) AS volume FROM price_ticks_synthetic"
    )
    assert row["n"] == row["ids"] == TICKS
    assert row["volume"] == pytest.approx(sum(t.size for t in ticks))
    bars = await conn.fetchrow(
        "SELECT sum(trades) AS trades, sum(volume) AS volume FROM price_bars_1m_synthetic"
    )
    assert bars["trades"] == TICKS, "bars count every tick once"
    assert bars["volume"] == pytest.approx(row["volume"])
    await conn.close()
