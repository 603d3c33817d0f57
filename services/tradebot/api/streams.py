"""Stream health: each stream's length and dead letters, and per consumer group its pending
entries and how far behind the stream's head it reads (what a stalled service looks like)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import ResponseError

from tradebot.api.models import GroupHealth, StreamHealth
from tradebot.common import keys


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _millis(entry_id: Any) -> int:
    return int(_text(entry_id or b"0-0").split("-", 1)[0])


def stream_health(
    stream: str, info: Mapping[str, Any] | None, groups: Sequence[Mapping[str, Any]], dead: int
) -> StreamHealth:
    """Pure: XINFO STREAM and XINFO GROUPS of one stream, as the dashboard shows them."""
    head = _millis(info.get("last-generated-id")) if info else 0
    return StreamHealth(
        stream=stream,
        length=int(info.get("length", 0)) if info else 0,
        dead_letters=dead,
        groups=[
            GroupHealth(
                group=_text(g["name"]), consumers=int(g.get("consumers", 0)),
                pending=int(g.get("pending", 0)), lag=int(g["lag"]) if g.get("lag") is not None else None,
                lag_ms=max(0, head - _millis(g.get("last-delivered-id"))),
            )
            for g in groups
        ],
    )  # fmt: skip


async def streams_health(redis: Redis, tick_shards: int) -> list[StreamHealth]:
    streams = [
        *keys.tick_streams(tick_shards),
        keys.SIGNALS,
        keys.ORDERS,
        keys.FILLS,
        keys.POSITIONS,
        keys.CONTROLS,
    ]
    found = []
    for stream in streams:
        try:
            info, groups = await redis.xinfo_stream(stream), await redis.xinfo_groups(stream)
        except ResponseError:  # no such stream yet
            info, groups = None, []
        dead = await redis.xlen(keys.dead_letter_stream(stream))
        found.append(stream_health(stream, info, groups, dead))
    return found
