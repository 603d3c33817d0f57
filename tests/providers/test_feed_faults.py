"""Live feeds under the faults an independent review found (issue 19, items 13-17).

Each test drives the real SDK against a local server that behaves as the
provider documents: a symbol delivered late, a REST outage during a gap fill,
Alpaca's 405 "symbol limit exceeded", Polygon's connection limit (a
`max_connections` status and close 1008), frames that are not the protocol.
"""

from __future__ import annotations

import asyncio
import json
from collections import Counter

import asyncpg
import pytest
from websockets.asyncio.client import connect

from support.services import eventually, running
from tradebot.catalog import service_factory
from tradebot.common import keys, wire
from tradebot.common.keys import errors_key
from tradebot.storage.schema import ensure_schema
from tradebot.storage.service import StorageService

from .conftest import alpaca_settings, polygon_settings
from .fakes.alpaca import FakeAlpaca
from .fakes.polygon import FakePolygon
from .test_live import between, heartbeat

pytestmark = pytest.mark.integration
SYMBOLS = ["AAPL", "MSFT", "TSLA"]


@pytest.fixture(params=["alpaca", "polygon"])
def live_fake(request):
    fake = (FakeAlpaca if request.param == "alpaca" else FakePolygon)(SYMBOLS, live_interval=0.05).start()
    yield request.param, fake
    fake.stop()


def feed_settings(make_settings, name: str, fake, **overrides):
    values = alpaca_settings(fake) if name == "alpaca" else polygon_settings(fake)
    return make_settings(**values, symbols=",".join(fake.symbols), provider_silence_timeout=5, **overrides)


async def true(value: bool) -> bool:
    return value


async def assert_every_live_trade_stored_once(conn: asyncpg.Connection, name: str, fake) -> None:
    """For each symbol: every trade of the live tape from the first stored to the last, once."""
    rows = await conn.fetch(f"SELECT symbol, id FROM price_ticks_{name} WHERE type = 'trade'")
    stored: dict[str, list[int]] = {symbol: [] for symbol in fake.symbols}
    for row in rows:
        stored[row["symbol"]].append(int(row["id"][1:]))
    for symbol, ids in stored.items():
        assert ids, f"no {symbol} trade stored"
        live = [trade.id for trade in fake.market.live[symbol]]
        assert sorted(ids) == between(live, ids), f"{symbol}: trades missing or stored twice"


async def test_a_lagging_symbol_loses_no_trades_over_drops(make_settings, database_url, live_fake):
    """Item 13: each symbol's gap fill starts from that symbol's newest trade, not a shared one."""
    name, fake = live_fake
    fake.lag("TSLA", 0.4)
    settings = feed_settings(make_settings, name, fake)
    conn = await asyncpg.connect(database_url)
    await ensure_schema(conn, (name,))
    try:
        async with running(StorageService(settings), settings=settings):
            async with running(service_factory(f"{name}_market_data")(settings), settings=settings) as [m]:
                for drop in range(1, 4):
                    published = m.ctx.counters["ticks_published"]
                    await eventually(lambda p=published: true(m.ctx.counters["ticks_published"] > p + 30))
                    assert fake.drop_connections() == 1
                    await eventually(lambda d=drop: true(m.ctx.counters["gaps_filled"] >= d), what="filled")
                await asyncio.sleep(1.0)  # TSLA's last live trades arrive after their lag
            await asyncio.sleep(0.5)
        await assert_every_live_trade_stored_once(conn, name, fake)
    finally:
        await conn.close()


async def test_a_failed_gap_fill_is_retried_until_it_succeeds(make_settings, database_url, redis, live_fake):
    """Item 14: a REST outage longer than one request's retries makes the fill fail; it is retried."""
    name, fake = live_fake
    settings = feed_settings(make_settings, name, fake, rate_limit_delay=0)
    service = service_factory(f"{name}_market_data")(settings)
    conn = await asyncpg.connect(database_url)
    await ensure_schema(conn, (name,))
    try:
        async with running(StorageService(settings), settings=settings):
            async with running(service, settings=settings) as [market]:
                counters = market.ctx.counters
                await eventually(lambda: true(counters["ticks_published"] > 30), what="live ticks")
                fake.fail_rest(9)  # more 503s than a request retries
                assert fake.drop_connections() == 1
                await eventually(lambda: true(counters["gap_fill_failures"] >= 1), what="a failed fill")
                await eventually(
                    lambda: true(counters["gaps_filled"] >= 1), within=60, what="the fill retried"
                )
                assert int(await redis.get(errors_key(service.service_id))) >= 1, (
                    "the failure was not counted"
                )
            await asyncio.sleep(0.5)
        await assert_every_live_trade_stored_once(conn, name, fake)
    finally:
        await conn.close()


async def test_a_gap_fill_republishes_nothing_the_stream_has(make_settings, redis, live_fake):
    """Item 15: after drops and fills, the tick stream carries each trade exactly once."""
    name, fake = live_fake
    settings = feed_settings(make_settings, name, fake)
    async with running(service_factory(f"{name}_market_data")(settings), settings=settings) as [market]:
        counters = market.ctx.counters
        for drop in range(1, 3):
            published = counters["ticks_published"]
            await eventually(lambda p=published: true(counters["ticks_published"] > p + 30), what="ticks")
            assert fake.drop_connections() == 1
            await eventually(lambda d=drop: true(counters["gaps_filled"] >= d), what="the gap filled")
        assert counters["gap_ticks"] > 0, "nothing was missed, so nothing was tested"
    entries = await redis.xrange(keys.TICKS)
    trades = Counter(
        (tick.symbol, tick.id)
        for tick in (wire.decode(fields) for _, fields in entries)
        if tick.type == "trade"
    )
    repeated = {trade: n for trade, n in trades.items() if n > 1}
    assert not repeated, f"{len(repeated)} trades published more than once, e.g. {list(repeated)[:3]}"


async def test_alpaca_refusing_the_subscription_is_an_error_state(make_settings, redis):
    """Item 16: 405 'symbol limit exceeded' is read and reported, not a silent 'running'."""
    fake = FakeAlpaca(SYMBOLS, live_interval=0.05, max_symbols=2).start()
    try:
        settings = feed_settings(make_settings, "alpaca", fake, provider_auth_retry=60)
        service = service_factory("alpaca_market_data")(settings)
        async with running(service, settings=settings) as [market]:

            async def refused() -> bool:
                return (await heartbeat(redis, service.service_id)).get("status") == "error"

            await eventually(refused, within=15, what="heartbeat status error")
            message = (await heartbeat(redis, service.service_id))["message"]
            for words in ("symbol limit exceeded", "405", "MAX_WEBSOCKET_SYMBOLS"):
                assert words in message
            await asyncio.sleep(2.0)
            assert not market.ctx.ready and market.ctx.counters["messages"] == 0
            assert fake.clients.connections == 1, "reconnected at once instead of waiting"
            assert int(await redis.get(errors_key(service.service_id))) == 1
    finally:
        fake.stop()


async def test_polygon_connection_limit_is_a_refusal_not_a_drop(make_settings, redis):
    """Item 17: 'max_connections' and close 1008 are reported as the limit, counted once, not retried
    every few seconds; the message is Polygon's, not a stale one."""
    fake = FakePolygon(SYMBOLS, live_interval=0.05, max_connections=1).start()
    try:
        async with connect(fake.ws_url + "/stocks") as other_client:  # another program holds the slot
            await other_client.recv()
            await other_client.send(json.dumps({"action": "auth", "params": fake.key}))
            assert "auth_success" in await other_client.recv()
            settings = feed_settings(make_settings, "polygon", fake, provider_auth_retry=60)
            service = service_factory("polygon_market_data")(settings)
            async with running(service, settings=settings) as [market]:
                await eventually(lambda: true(market.ctx.status == "error"), within=15, what="error state")
                await asyncio.sleep(3.0)
                message = market.ctx.status_message or ""
                assert "connection" in message and "POLYGON_API_KEY" in message, message
                assert "authentication" not in message
                assert market.ctx.counters["reconnects"] <= 1, "treated as a network drop"
                assert int(await redis.get(errors_key(service.service_id))) == 1
    finally:
        fake.stop()


@pytest.mark.parametrize(
    ("name", "frame"), [("polygon", "this is not JSON"), ("alpaca", b"\xc1 not msgpack")]
)
async def test_malformed_frames_are_counted_and_the_feed_goes_on(make_settings, redis, name, frame):
    """Item 17: a frame that is not the protocol counts as an error; data keeps flowing."""
    fake = (FakeAlpaca if name == "alpaca" else FakePolygon)(SYMBOLS, live_interval=0.05).start()
    try:
        settings = feed_settings(make_settings, name, fake)
        service = service_factory(f"{name}_market_data")(settings)
        async with running(service, settings=settings) as [market]:
            counters = market.ctx.counters
            await eventually(lambda: true(counters["messages"] > 10), what="live data")
            fake.send_raw(frame)

            async def counted() -> bool:
                return int(await redis.get(errors_key(service.service_id)) or 0) >= 1

            await eventually(counted, within=10, what="the bad frame counted as an error")
            before = counters["messages"]
            await eventually(lambda: true(counters["messages"] > before + 10), what="data after the frame")
            if name == "polygon":  # its frames are ours to read: one bad frame is skipped, no reconnect
                assert counters["reconnects"] == 0
    finally:
        fake.stop()
