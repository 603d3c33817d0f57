"""The naive baseline: one XADD round trip per tick, one INSERT (autocommit) per row.

This is how a first version of a tick pipeline usually looks; bench/pipeline.py
pushes the same load through it to put our figures in proportion.
"""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime

import asyncpg

from tradebot.common import wire
from tradebot.common.connections import connect_redis
from tradebot.market_data.synthetic import SyntheticMarket

STREAM = "naive:ticks"
GROUP = "naive-storage"


async def produce(redis_url: str, symbols: list[str], rate: float, duration: float) -> int:
    """Offer `rate` ticks/s for `duration` seconds, one XADD round trip each."""
    redis = connect_redis(redis_url)
    market = SyntheticMarket(symbols, seconds_per_tick=len(symbols) / rate, seed=1)
    started, sent = time.monotonic(), 0
    while (elapsed := time.monotonic() - started) < duration:
        due = min(int(elapsed * rate) - sent, 100)  # a few at a time: the window ends on time
        for tick in market.next_ticks(max(due, 0), datetime.now(UTC)):
            await redis.xadd(STREAM, wire.encode(tick))
            sent += 1
        if due <= 0:
            await asyncio.sleep(0.001)
    await redis.aclose()
    return sent


async def store(redis_url: str, database_url: str, duration: float) -> int:
    """Read one entry at a time, INSERT it, acknowledge it, for `duration` seconds."""
    redis = connect_redis(redis_url)
    conn = await asyncpg.connect(database_url)
    await redis.xgroup_create(STREAM, GROUP, id="0", mkstream=True)
    stored, deadline = 0, time.monotonic() + duration
    while time.monotonic() < deadline:
        response = await redis.xreadgroup(GROUP, "naive", {STREAM: ">"}, count=1, block=200)
        for entry_id, fields in response[0][1] if response else []:
            tick = wire.decode(fields)
            await conn.execute(
                "INSERT INTO price_ticks_naive (time, symbol, price, size, bid, ask, volume, id)"
                " VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT DO NOTHING",
                tick.time, tick.symbol, tick.price, tick.size, tick.bid, tick.ask, tick.volume, tick.id,
            )  # fmt: skip
            await redis.xack(STREAM, GROUP, entry_id)
            stored += 1
    await conn.close()
    await redis.aclose()
    return stored
