"""What the dashboard reads from Redis: the live streams, and the snapshot a new browser starts from.

The dashboard is a viewer: it reads with plain XREAD from the newest entry
(`$`), never through a consumer group, so it acknowledges nothing and takes no
work from the services.
"""

from __future__ import annotations

import logging
from typing import Any

from redis.asyncio import Redis

from tradebot.api.account import read_account
from tradebot.api.status import service_statuses
from tradebot.common import keys, wire
from tradebot.common.models import Message
from tradebot.dashboard.frames import Frame, event, price_update

log = logging.getLogger(__name__)
LIVE_STREAMS = (keys.TICKS, keys.SIGNALS, keys.ORDERS, keys.FILLS, keys.POSITIONS)
RECENT_EVENTS = 30


def decode_entries(response) -> list[Message]:
    """Pure: the messages of an XREAD reply; undecodable ones are skipped (the consumers dead-letter them)."""
    messages = []
    for _, entries in response or []:
        for _, fields in entries:
            try:
                messages.extend(wire.decode_entry(fields).messages)
            except wire.WireError:
                continue
    return messages


class StreamFeed:
    """Reads new entries of the live streams, remembering where it stopped."""

    def __init__(self, redis: Redis, count: int = 2_000, block_ms: int = 1_000, tick_shards: int = 1) -> None:
        self.redis = redis
        self.count = count
        self.block_ms = block_ms
        self.last_ids: dict[str, bytes | str] = dict.fromkeys(
            (*keys.tick_streams(tick_shards), *LIVE_STREAMS[1:]), "$"
        )

    async def read(self) -> list[Message]:
        response = await self.redis.xread(self.last_ids, count=self.count, block=self.block_ms)
        for stream, entries in response or []:
            if entries:
                self.last_ids[stream.decode() if isinstance(stream, bytes) else stream] = entries[-1][0]
        return decode_entries(response)


async def recent_events(redis: Redis) -> list[dict[str, Any]]:
    """The last few signals, orders and fills, oldest first, for a browser that just connected."""
    events: list[dict[str, Any]] = []
    for stream in (keys.SIGNALS, keys.ORDERS, keys.FILLS):
        entries = await redis.xrevrange(stream, count=RECENT_EVENTS)
        events += [event(m) for m in decode_entries([(stream, entries)])]
    return sorted(events, key=lambda e: e["time"])


async def live_health(redis: Redis, data_source: str) -> list[dict[str, Any]]:
    return [s.model_dump(mode="json") for s in await service_statuses(redis, data_source)]


async def live_account(redis: Redis, starting_cash: float) -> dict[str, Any]:
    return (await read_account(redis, starting_cash)).model_dump(mode="json")


async def snapshot(redis: Redis, data_source: str, starting_cash: float) -> Frame:
    """Everything a new browser needs before the live frames: latest prices, recent events, state."""
    ticks = await keys.read_latest_ticks(redis)
    return Frame(
        prices={symbol: price_update(tick) for symbol, tick in ticks.items()},
        events=tuple(await recent_events(redis)),
        health=await live_health(redis, data_source),
        account=await live_account(redis, starting_cash),
        kind="snapshot",
    )
