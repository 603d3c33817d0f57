"""Live feeds through the real SDKs into storage: streaming, drops, silence, credentials."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import asyncpg
import orjson
import pytest

from support.services import eventually, running
from tradebot.catalog import service_factory
from tradebot.common.keys import errors_key, heartbeat_key
from tradebot.common.settings import Settings
from tradebot.storage.schema import ensure_schema
from tradebot.storage.service import StorageService

from .conftest import SYMBOLS, alpaca_settings, polygon_settings
from .fakes.alpaca import FakeAlpaca
from .fakes.market import MinuteBar
from .fakes.polygon import FakePolygon

pytestmark = pytest.mark.integration


@dataclass
class Provider:
    name: str
    fake: Any
    values: dict
    service: Callable[[Settings], Any]
    credential_words: tuple[str, ...]


@pytest.fixture(params=["alpaca", "polygon"])
def provider(request):
    if request.param == "alpaca":
        fake = FakeAlpaca(SYMBOLS, live_interval=0.05).start()
        made = Provider("alpaca", fake, alpaca_settings(fake), service_factory("alpaca_market_data"),
                        ("ALPACA_KEY/ALPACA_SECRET", "auth failed", "402"))  # fmt: skip
    else:
        fake = FakePolygon(SYMBOLS, live_interval=0.05).start()
        made = Provider("polygon", fake, polygon_settings(fake), service_factory("polygon_market_data"),
                        ("POLYGON_API_KEY", "authentication failed"))  # fmt: skip
    yield made
    fake.stop()


def settings_for(make_settings, provider: Provider, **overrides):
    return make_settings(**{**provider.values, "symbols": ",".join(SYMBOLS), "provider_silence_timeout": 3,
                            **overrides})  # fmt: skip


async def stored_trade_ids(conn: asyncpg.Connection, source: str) -> dict[str, list[int]]:
    rows = await conn.fetch(
        f"SELECT symbol, id FROM price_ticks_{source} WHERE id LIKE 't%' ORDER BY time, id"
    )
    found: dict[str, list[int]] = {symbol: [] for symbol in SYMBOLS}
    for row in rows:
        found[row["symbol"]].append(int(row["id"][1:]))
    return found


def between(live: list[int], stored: list[int]) -> list[int]:
    """The market's trades from the first stored one to the last."""
    return live[live.index(min(stored)) : live.index(max(stored)) + 1]


async def heartbeat(redis, service_id: str) -> dict:
    raw = await redis.get(heartbeat_key(service_id))
    return orjson.loads(raw) if raw else {}


async def test_stream_into_storage_and_fill_the_gap_of_a_drop(make_settings, database_url, provider):
    settings = settings_for(make_settings, provider)
    conn = await asyncpg.connect(database_url)
    await ensure_schema(conn, (provider.name,))
    try:
        async with running(StorageService(settings), settings=settings):
            async with running(provider.service(settings), settings=settings) as [market]:
                counters = market.ctx.counters

                async def some_trades_stored() -> bool:
                    ids = await stored_trade_ids(conn, provider.name)
                    return all(len(v) >= 10 for v in ids.values())

                await eventually(some_trades_stored, what="live trades stored")
                provider.fake.send_bar(MinuteBar("AAPL", 1_700_000_000_000, 1, 2, 0.5, 1.5, 100, 3))
                assert provider.fake.drop_connections() == 1
                await eventually(lambda: _true(counters["reconnects"] >= 1), what="a reconnect")
                await eventually(lambda: _true(counters["gaps_filled"] >= 1), what="the gap filled")
                assert counters["gap_ticks"] > 0
                await asyncio.sleep(0.5)
                assert market.ctx.status == "running"
            await assert_stored_exactly_once(conn, provider)
            bars = await conn.fetchval(f"SELECT count(*) FROM price_ticks_{provider.name} WHERE type = 'bar'")
            quotes = await conn.fetchval(f"SELECT count(*) FROM price_ticks_{provider.name} WHERE bid > 0")
            assert bars == 1 and quotes > 0
    finally:
        await conn.close()


async def assert_stored_exactly_once(conn: asyncpg.Connection, provider: Provider) -> None:
    """The stored trades are exactly the market's, from the first stored to the last: no holes, no repeats."""
    live = {s: [t.id for t in provider.fake.market.live[s]] for s in SYMBOLS}

    async def all_stored() -> bool:
        stored = await stored_trade_ids(conn, provider.name)
        return all(set(between(live[s], stored[s])) <= set(stored[s]) for s in SYMBOLS)

    await eventually(all_stored, what="every trade from the first stored to the last")
    stored = await stored_trade_ids(conn, provider.name)
    for symbol in SYMBOLS:
        assert len(stored[symbol]) == len(set(stored[symbol])), "a trade stored twice"
        assert sorted(stored[symbol]) == between(live[symbol], stored[symbol])


async def test_a_restarted_service_fills_the_gap_it_left(make_settings, database_url, provider):
    settings = settings_for(make_settings, provider)
    conn = await asyncpg.connect(database_url)
    await ensure_schema(conn, (provider.name,))
    try:
        async with running(StorageService(settings), settings=settings):
            async with running(provider.service(settings), settings=settings) as [market]:
                await eventually(
                    lambda: _true(market.ctx.counters["ticks_published"] > 20), what="live ticks"
                )
            await asyncio.sleep(1.0)  # the market trades on while no service runs
            async with running(provider.service(settings), settings=settings) as [market]:
                await eventually(
                    lambda: _true(market.ctx.counters["gaps_filled"] == 1), what="the gap filled"
                )
                assert market.ctx.counters["gap_ticks"] >= 2 * 10
            await assert_stored_exactly_once(conn, provider)
    finally:
        await conn.close()


async def _true(value: bool) -> bool:
    return value


async def test_a_silent_feed_is_reconnected(make_settings, provider):
    settings = settings_for(make_settings, provider, provider_silence_timeout=1)
    async with running(provider.service(settings), settings=settings) as [market]:
        counters = market.ctx.counters
        await eventually(lambda: _true(counters["messages"] > 0), what="live data")
        provider.fake.set_silent(True)
        await eventually(lambda: _true(counters["silences"] >= 1), what="silence detected")
        connections = provider.fake.clients.connections
        provider.fake.set_silent(False)
        await eventually(
            lambda: _true(provider.fake.clients.connections > connections), what="a new connection"
        )
        before = counters["messages"]
        await eventually(lambda: _true(counters["messages"] > before), what="data again")


async def test_rejected_credentials_are_an_error_state_not_a_crash_loop(make_settings, redis, provider):
    wrong = {"alpaca_key": "nope"} if provider.name == "alpaca" else {"polygon_api_key": "nope"}
    settings = settings_for(make_settings, provider, **wrong)
    service = provider.service(settings)
    async with running(service, settings=settings) as [market]:

        async def error_heartbeat() -> bool:
            return (await heartbeat(redis, service.service_id)).get("status") == "error"

        await eventually(error_heartbeat, within=15, what="heartbeat status error")
        beat = await heartbeat(redis, service.service_id)
        for word in provider.credential_words:
            assert word in beat["message"]
        assert int(await redis.get(errors_key(service.service_id))) == 1
        await asyncio.sleep(1.5)
        assert provider.fake.auth_failures == 1, "retried at once instead of backing off"
        assert market.ctx.status == "error"


async def test_missing_credentials_name_the_variable(make_settings, redis, provider):
    missing = {"alpaca_secret": None} if provider.name == "alpaca" else {"polygon_api_key": None}
    settings = settings_for(make_settings, provider, **missing)
    service = provider.service(settings)
    async with running(service, settings=settings) as [market]:
        await eventually(lambda: _true(market.ctx.status == "error"), what="error state")
        variable = "ALPACA_SECRET" if provider.name == "alpaca" else "POLYGON_API_KEY"
        assert variable in market.ctx.status_message and "not set" in market.ctx.status_message
        await eventually(lambda: _true(market.ctx.counters["errors"] == 1), what="the error counted")
        assert int(await redis.get(errors_key(service.service_id))) == 1
        assert provider.fake.clients.connections == 0


@pytest.mark.parametrize("name", ["alpaca", "polygon"])
async def test_subscribed_but_quiet_is_ready(make_settings, name):
    fake = (FakeAlpaca if name == "alpaca" else FakePolygon)(SYMBOLS).start()  # no live tape: a quiet market
    try:
        values = alpaca_settings(fake) if name == "alpaca" else polygon_settings(fake)
        settings = make_settings(**values, symbols=",".join(SYMBOLS), provider_silence_timeout=30)
        service = service_factory(f"{name}_market_data")(settings)
        async with running(service, settings=settings) as [market]:
            await eventually(lambda: _true(market.ctx.ready and market.ctx.status == "running"), what="ready")
            assert market.ctx.counters["messages"] == 0
    finally:
        fake.stop()
