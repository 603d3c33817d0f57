"""Trimming never drops what a consumer group has not acknowledged; an overflow raises the alarm."""

from __future__ import annotations

from datetime import UTC, datetime

import asyncpg
import orjson
import pytest

from support.services import eventually, running
from tradebot.common import keys
from tradebot.common.keys import errors_key, heartbeat_key
from tradebot.market_data.publishing import TickPublisher
from tradebot.market_data.service import SyntheticMarketDataService
from tradebot.market_data.synthetic import SyntheticMarket
from tradebot.storage.schema import ensure_schema
from tradebot.storage.service import StorageService

pytestmark = pytest.mark.integration
TICKS = 20_000


async def test_a_stopped_consumer_loses_nothing_to_trimming(make_settings, redis, database_url):
    settings = make_settings(stream_maxlen=1_000)
    conn = await asyncpg.connect(database_url)
    await ensure_schema(conn)
    async with running(StorageService(settings), settings=settings) as [storage]:  # its group exists

        async def ready() -> bool:
            return storage.readiness()[0]

        await eventually(ready, what="storage ready")
    publisher = TickPublisher(redis, settings.stream_maxlen)
    market = SyntheticMarket(["AAPL", "MSFT"], seconds_per_tick=0.01, seed=5)
    for _ in range(TICKS // 500):  # published while storage is stopped, 20 times STREAM_MAXLEN
        await publisher.publish(market.next_ticks(500, datetime.now(UTC)))
    async with running(StorageService(settings), settings=settings):

        async def all_stored() -> bool:
            return await conn.fetchval("SELECT count(*) FROM price_ticks_synthetic") == TICKS

        await eventually(all_stored, within=60, what=f"all {TICKS} ticks stored")
    await conn.close()


async def test_a_group_stream_maxlen_behind_raises_the_alarm_and_slows_the_feed(make_settings, redis):
    settings = make_settings(stream_maxlen=1_000, ticks_per_second=20_000)
    await redis.xgroup_create(keys.TICKS, "storage", id="0", mkstream=True)  # storage, never running
    async with running(SyntheticMarketDataService(settings, seed=2), settings=settings) as [market]:

        async def alarm_in_heartbeat() -> bool:
            beat = orjson.loads(await redis.get(heartbeat_key("market_data")) or b"{}")
            return "'storage' has not acknowledged" in (beat.get("message") or "")

        await eventually(alarm_in_heartbeat, within=60, what="the overflow in the producer's heartbeat")
        assert int(await redis.get(errors_key("market_data"))) == 1, "counted once, as an error"
    held = await redis.xrange(keys.TICKS)
    assert len(held) < 2 * settings.stream_maxlen, "the feed waits instead of growing the stream"
    in_stream = sum(int(fields.get(b"n", b"1")) for _, fields in held)
    assert in_stream == market.ctx.counters["ticks_published"], "nothing published was dropped"
