"""A malformed entry goes to a dead-letter stream, counts an error, and the service keeps running."""

from __future__ import annotations

from datetime import UTC, datetime

import asyncpg
import pytest

from support.services import eventually, running
from tradebot.common import bus, keys
from tradebot.common.keys import errors_key
from tradebot.common.models import PriceTick
from tradebot.market_data.publishing import TickPublisher
from tradebot.storage.schema import ensure_schema
from tradebot.storage.service import StorageService
from tradebot.strategy.service import StrategyService

pytestmark = pytest.mark.integration

MALFORMED = [
    {b"v": b"1", b"k": b"tick", b"d": b"{not json"},
    {b"something": b"else"},
    {b"v": b"2", b"k": b"tick", b"d": b"{}"},
    {b"v": b"1", b"k": b"tick", b"d": b'{"source":"x; DROP TABLE orders","symbol":"AAPL","price":1,'
                                       b'"time":"2026-01-01T00:00:00Z"}'},
]  # fmt: skip


def good_tick(n: int) -> PriceTick:
    return PriceTick(id=f"good-{n}", source="synthetic", symbol="AAPL", time=datetime.now(UTC), price=100 + n)


async def test_storage_dead_letters_bad_entries_and_stores_the_rest(make_settings, redis, database_url):
    settings = make_settings()
    conn = await asyncpg.connect(database_url)
    await ensure_schema(conn)
    publisher = TickPublisher(redis, settings.stream_maxlen)
    async with running(StorageService(settings), settings=settings) as [storage]:
        await publisher.publish([good_tick(1)])
        for fields in MALFORMED:
            await redis.xadd(keys.TICKS, fields)
        await publisher.publish([good_tick(2)])

        async def both_good_ticks_stored() -> bool:
            return await conn.fetchval("SELECT count(*) FROM price_ticks_synthetic") == 2

        await eventually(both_good_ticks_stored, what="the good ticks around the bad ones")
        assert storage.readiness()[0], "still ready after bad input"
        dead = await redis.xrange(keys.dead_letter_stream(keys.TICKS))
        assert len(dead) == len(MALFORMED)
        reasons = [fields[b"dead:reason"].decode() for _, fields in dead]
        assert "invalid tick" in reasons[0] and "unsupported wire version" in reasons[1]
        assert "'source'" in reasons[3] and "should match pattern" in reasons[3]
        assert dead[0][1][b"d"] == b"{not json"  # the original entry is kept for inspection
        assert int(await redis.get(errors_key("storage"))) == len(MALFORMED)
        pending = await redis.xpending(keys.TICKS, "storage")
        assert pending["pending"] == 0, "dead-lettered entries are acknowledged"
    await conn.close()


async def test_wrong_kind_on_a_stream_is_dead_lettered(make_settings, redis):
    settings = make_settings()
    async with running(StrategyService(settings), settings=settings):
        order_fields = {b"v": b"1", b"k": b"position", b"d": b'{"symbol":"AAPL","quantity":1,'
                        b'"average_price":1,"realized_pnl":0,"market_price":1,"unrealized_pnl":0,'
                        b'"time":"2026-01-01T00:00:00Z"}'}  # fmt: skip
        await redis.xadd(keys.TICKS, order_fields)

        async def dead_lettered() -> bool:
            return await redis.xlen(keys.dead_letter_stream(keys.TICKS)) == 1

        await eventually(dead_lettered, what="the position on the ticks stream to be dead-lettered")
        [(_, fields)] = await redis.xrange(keys.dead_letter_stream(keys.TICKS))
        assert fields[b"dead:reason"] == b"a position does not belong on stream 'ticks'"
        assert int(await redis.get(errors_key("strategy"))) == 1


async def test_a_huge_bad_entry_is_dead_lettered_as_its_size_and_a_prefix(make_settings, redis):
    settings = make_settings()
    huge = b"{not json" + b"x" * 5_000_000
    async with running(StrategyService(settings), settings=settings):
        await redis.xadd(keys.TICKS, {b"v": b"1", b"k": b"tick", b"d": huge})

        async def dead_lettered() -> bool:
            return await redis.xlen(keys.dead_letter_stream(keys.TICKS)) == 1

        await eventually(dead_lettered, what="the huge entry to be dead-lettered")
    [(_, fields)] = await redis.xrange(keys.dead_letter_stream(keys.TICKS))
    assert fields[b"d"] == huge[: bus.DEAD_LETTER_FIELD_BYTES]
    assert fields[b"dead:size:d"] == str(len(huge)).encode()
    assert fields[b"k"] == b"tick" and b"dead:size:k" not in fields  # small fields stay whole
    assert await redis.memory_usage(keys.dead_letter_stream(keys.TICKS)) < 100_000
