"""A restarted synthetic feed carries on from where the market was, not from fixed reference prices."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from support.services import eventually, running
from tradebot.common import bus, keys
from tradebot.common.models import PriceTick
from tradebot.market_data.service import SyntheticMarketDataService
from tradebot.market_data.synthetic import reference_price

pytestmark = pytest.mark.integration


async def test_a_restarted_feed_continues_from_the_latest_price(make_settings, redis):
    settings = make_settings(symbols="MSFT", ticks_per_second=20)
    # Where an earlier run left MSFT: well away from the reference price it would restart at.
    before = PriceTick(id="earlier", source="synthetic", symbol="MSFT", time=datetime.now(UTC),
                       price=408.68, volume=12_345)  # fmt: skip
    assert abs(before.price - reference_price("MSFT")) > 20
    await redis.hset(keys.LATEST_PRICES, "MSFT", before.model_dump_json())
    reader = bus.Consumer(redis, "reader", "reader", [keys.TICKS], block_ms=100)
    await reader.setup()
    received: list[PriceTick] = []

    async def a_tick() -> bool:
        received.extend(d.message for d in await reader.read())
        return bool(received)

    async with running(SyntheticMarketDataService(settings, seed=1), settings=settings):
        await eventually(a_tick, what="the restarted feed's first tick")
    first = received[0]
    assert first.price == pytest.approx(before.price, rel=0.01), "continues from the last price"
    assert first.volume > before.volume, "and from the day's running volume"
