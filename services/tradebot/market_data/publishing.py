"""Publishing ticks: the `ticks` stream plus the latest price per symbol.

Shared by every market-data service (synthetic, Alpaca, Polygon) so they all
look the same downstream.
"""

from __future__ import annotations

from collections.abc import Sequence

from redis.asyncio import Redis

from tradebot.common import bus, wire
from tradebot.common.keys import LATEST_PRICES, TICKS
from tradebot.common.models import PriceTick
from tradebot.common.telemetry import traced


class TickPublisher:
    def __init__(self, redis: Redis, maxlen: int) -> None:
        self.redis = redis
        self.publisher = bus.Publisher(redis, maxlen)

    async def publish(self, ticks: Sequence[PriceTick], latest: bool = True) -> int:
        """One round trip: append every tick and refresh `prices:latest` for their symbols
        (`latest=False` for older ticks, such as a gap fill's, that must not replace newer prices)."""
        if not ticks:
            return 0
        entries = []
        for tick in ticks:
            with traced(__name__, "publish tick", symbol=tick.symbol, source=tick.source) as tp:
                entries.append(wire.encode(tick, tp))
        pipe = self.redis.pipeline(transaction=False)
        await self.publisher.append_encoded(pipe, TICKS, entries)
        if latest:
            newest = {tick.symbol: fields[b"d"] for tick, fields in zip(ticks, entries, strict=True)}
            pipe.hset(LATEST_PRICES, mapping=newest)
        await pipe.execute()
        return len(ticks)
