"""TICK_SHARDS: each tick goes to its symbol's shard stream; storage reads every shard."""

from __future__ import annotations

import asyncpg
import pytest

from support.services import eventually, running
from tradebot.common import keys, wire
from tradebot.market_data.service import SyntheticMarketDataService
from tradebot.storage.schema import ensure_schema
from tradebot.storage.service import StorageService

pytestmark = pytest.mark.integration
SYMBOLS = ["AAPL", "MSFT", "AMZN", "GOOG", "TSLA", "NVDA", "META", "JPM"]


async def test_ticks_are_sharded_by_symbol_and_all_stored(make_settings, redis, database_url):
    settings = make_settings(symbols=",".join(SYMBOLS), ticks_per_second=400, tick_shards=4)
    conn = await asyncpg.connect(database_url)
    await ensure_schema(conn)
    async with running(StorageService(settings), settings=settings):
        async with running(SyntheticMarketDataService(settings, seed=4), settings=settings) as [market]:

            async def some_published() -> bool:
                return market.ctx.counters["ticks_published"] >= 400

            await eventually(some_published, what="a second of ticks")
        published = market.ctx.counters["ticks_published"]

        async def all_stored() -> bool:
            return await conn.fetchval("SELECT count(*) FROM price_ticks_synthetic") == published

        await eventually(all_stored, what=f"all {published} ticks stored from the four shards")
    assert not await redis.exists(keys.TICKS), "a sharded stack does not write the unsharded stream"
    in_shards = 0
    for shard, stream in enumerate(keys.tick_streams(4)):
        symbols = {
            tick.symbol
            for _, fields in await redis.xrange(stream)
            for tick in wire.decode_entry(fields).messages
        }
        assert symbols == {s for s in SYMBOLS if keys.tick_shard(s, 4) == shard}, stream
        in_shards += len(symbols)
    assert in_shards == len(SYMBOLS)
    await conn.close()
