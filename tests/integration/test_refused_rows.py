"""One bad entry never stops storage: what the database refuses is dead-lettered, the rest stored."""

from __future__ import annotations

from datetime import UTC, datetime

import asyncpg
import pytest

from support.services import eventually, running
from tradebot.common import keys
from tradebot.common.keys import errors_key
from tradebot.common.models import PriceTick
from tradebot.market_data.publishing import TickPublisher
from tradebot.storage.schema import ensure_schema
from tradebot.storage.service import StorageService

pytestmark = [pytest.mark.integration, pytest.mark.backends]


def tick(n: int, price: float = 100.0) -> PriceTick:
    return PriceTick(
        id=f"t-{n}", source="synthetic", symbol="AAPL", time=datetime.now(UTC), price=price + n % 7
    )


async def stored(conn: asyncpg.Connection) -> int:
    return await conn.fetchval("SELECT count(*) FROM price_ticks_synthetic")


async def test_a_row_the_database_refuses_is_dead_lettered_and_the_rest_stored(
    make_settings, redis, database_url
):
    settings = make_settings()
    conn = await asyncpg.connect(database_url)
    await ensure_schema(conn)
    # A rule of the database the wire knows nothing about: it refuses the row for a data reason.
    await conn.execute("ALTER TABLE price_ticks_synthetic ADD CONSTRAINT sane_price CHECK (price < 1000000)")
    publisher = TickPublisher(redis, settings.stream_maxlen)
    batch = [tick(n) for n in range(300)]
    batch[137] = tick(137, price=5_000_000)
    async with running(StorageService(settings), settings=settings) as [storage]:
        await publisher.publish(batch)
        await publisher.publish([tick(n) for n in range(300, 400)])

        async def the_rest_stored_and_the_refusal_counted() -> bool:
            # The refusal is dead-lettered and counted after the rest of its batch commits.
            return await stored(conn) == 399 and await redis.get(errors_key("storage")) is not None

        await eventually(the_rest_stored_and_the_refusal_counted, what="every tick but the refused one")
        assert storage.readiness()[0], "still ready"
        [(_, dead)] = await redis.xrange(keys.dead_letter_stream(keys.TICKS))
        assert b"t-137" in dead[b"d"], "the refused tick itself is kept"
        assert b"sane_price" in dead[b"dead:reason"], "with the database's words"
        assert int(await redis.get(errors_key("storage"))) == 1
        assert (await redis.xpending(keys.TICKS, "storage"))["pending"] == 0
    await conn.close()


async def test_nul_characters_are_dead_lettered_and_the_rest_stored(make_settings, redis, database_url):
    settings = make_settings()
    conn = await asyncpg.connect(database_url)
    await ensure_schema(conn)
    publisher = TickPublisher(redis, settings.stream_maxlen)
    nul_tick = {b"v": b"1", b"k": b"tick", b"d": b'{"id":"bad\\u0000id","source":"synthetic","symbol":"AAPL",'
                b'"price":1,"time":"2026-01-01T00:00:00Z"}'}  # fmt: skip
    nul_signal = {b"v": b"1", b"k": b"signal", b"d": b'{"id":"s1","time":"2026-01-01T00:00:00Z",'
                  b'"strategy":"rsi","symbol":"AAPL","side":"buy","strength":1,"reason":"RSI\\u0000 20",'
                  b'"price":1,"source":"synthetic","tick_id":"t",'
                  b'"tick_time":"2026-01-01T00:00:00Z"}'}  # fmt: skip
    async with running(StorageService(settings), settings=settings):
        await publisher.publish([tick(n) for n in range(50)])
        await redis.xadd(keys.TICKS, nul_tick)
        await redis.xadd(keys.SIGNALS, nul_signal)
        await publisher.publish([tick(n) for n in range(50, 100)])

        async def the_rest_stored() -> bool:
            return await stored(conn) == 100

        await eventually(the_rest_stored, what="the ticks around the one with a NUL")
        for stream in (keys.TICKS, keys.SIGNALS):
            [(_, dead)] = await redis.xrange(keys.dead_letter_stream(stream))
            assert b"NUL" in dead[b"dead:reason"]
    await conn.close()
