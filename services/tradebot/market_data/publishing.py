"""Publishing ticks: each to its shard's tick stream, plus the latest price per symbol.

Shared by every market-data service (synthetic, Alpaca, Polygon) so they all
look the same downstream.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence

from redis.asyncio import Redis

from tradebot.common import bus, keys, wire
from tradebot.common.models import PriceTick
from tradebot.common.service import ServiceContext
from tradebot.common.telemetry import traced, tracing_enabled


class TickPublisher:
    def __init__(
        self, redis: Redis, maxlen: int, shards: int = 1, publisher: bus.Publisher | None = None
    ) -> None:
        self.redis = redis
        self.shards = shards
        self.publisher = publisher or bus.Publisher(redis, maxlen)
        self._streams: dict[str, str] = {}  # symbol -> its shard's stream

    @classmethod
    def of(cls, ctx: ServiceContext) -> TickPublisher:
        """The service's publisher: sharded per TICK_SHARDS, alarming through its heartbeat."""
        return cls(ctx.redis, ctx.settings.stream_maxlen, ctx.settings.tick_shards, ctx.publisher())

    @property
    def overflowing(self) -> bool:
        """Whether a tick stream is over STREAM_MAXLEN because a consumer group is behind."""
        return bool(self.publisher.overflowing)

    async def trim(self) -> None:
        await self.publisher.trim()

    async def publish(self, ticks: Sequence[PriceTick], latest: bool = True) -> int:
        """One round trip: append every tick (in batched entries) and refresh `prices:latest`
        (`latest=False` for older ticks, such as a gap fill's, that must not replace newer prices)."""
        if not ticks:
            return 0
        pipe = self.redis.pipeline(transaction=False)
        for stream, shard_ticks in self._by_stream(ticks).items():
            entries = [
                wire.encode_batch(batch, self._traceparents(batch))
                for batch in _chunks(shard_ticks, wire.MAX_BATCH)
            ]
            await self.publisher.append_encoded(pipe, stream, entries)
        if latest:
            newest = {tick.symbol: tick for tick in ticks}
            pipe.hset(keys.LATEST_PRICES, mapping={s: wire.encode_json(t) for s, t in newest.items()})
        await pipe.execute()
        await self.trim()
        return len(ticks)

    def _by_stream(self, ticks: Sequence[PriceTick]) -> Mapping[str, Sequence[PriceTick]]:
        if self.shards == 1:
            return {keys.TICKS: ticks}
        grouped: dict[str, list[PriceTick]] = defaultdict(list)
        for tick in ticks:
            stream = self._streams.get(tick.symbol)
            if stream is None:
                shard = keys.tick_shard(tick.symbol, self.shards)
                stream = self._streams[tick.symbol] = keys.tick_stream(shard, self.shards)
            grouped[stream].append(tick)
        return grouped

    @staticmethod
    def _traceparents(ticks: Sequence[PriceTick]) -> list[str | None] | None:
        """A "publish tick" span per tick, when tracing is on: each tick starts its own trace."""
        if not tracing_enabled():
            return None
        traceparents = []
        for tick in ticks:
            with traced(__name__, "publish tick", symbol=tick.symbol, source=tick.source) as tp:
                traceparents.append(tp)
        return traceparents


def _chunks(items: Sequence[PriceTick], size: int) -> list[Sequence[PriceTick]]:
    return [items[start : start + size] for start in range(0, len(items), size)]
