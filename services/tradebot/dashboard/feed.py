"""What the dashboard reads from Redis: the live streams, and the snapshot a new browser starts from.

The dashboard is a viewer: it reads with plain XREAD, never through a consumer
group, so it acknowledges nothing and takes no work from the services. It follows
each stream from the last id it has seen there, starting at each stream's newest
entry: XREAD's `$` would mean "newest" again on every call, skipping whatever a
quiet stream received while a busy one was being read.
"""

from __future__ import annotations

import logging
from typing import Any

from redis.asyncio import Redis
from redis.typing import KeyT, StreamIdT

from tradebot.api.account import read_account
from tradebot.api.status import service_statuses
from tradebot.common import keys, wire
from tradebot.common.models import Message
from tradebot.dashboard.frames import Frame, event, price_update

log = logging.getLogger(__name__)
EVENT_STREAMS = (keys.SIGNALS, keys.ORDERS, keys.FILLS, keys.POSITIONS)
RECENT_EVENTS = 30
BEFORE_ANY = b"0-0"  # a stream that does not exist yet is followed from its first entry


def live_streams(tick_shards: int) -> list[str]:
    """Every stream the dashboard shows: each tick shard, then signals, orders, fills, positions."""
    return [*keys.tick_streams(tick_shards), *EVENT_STREAMS]


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
    """Reads new entries of the live streams, following each from the last id seen in it."""

    def __init__(self, redis: Redis, streams: list[str], count: int = 2_000, block_ms: int = 1_000) -> None:
        self.redis = redis
        self.streams = streams
        self.count = count
        self.block_ms = block_ms
        self.last_ids: dict[KeyT, StreamIdT] = {}

    async def start(self) -> None:
        """Begin after each stream's newest entry (history comes from the snapshot, not from here)."""
        async with self.redis.pipeline(transaction=False) as pipe:
            for stream in self.streams:
                pipe.xrevrange(stream, count=1)
            newest = await pipe.execute()
        pairs = zip(self.streams, newest, strict=True)
        self.last_ids = {stream: entries[0][0] if entries else BEFORE_ANY for stream, entries in pairs}

    async def read(self) -> list[Message]:
        response: Any = await self.redis.xread(self.last_ids, count=self.count, block=self.block_ms)
        for stream, entries in response or []:
            if entries:
                self.last_ids[stream.decode() if isinstance(stream, bytes) else str(stream)] = entries[-1][0]
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
