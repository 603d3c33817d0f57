"""A tick shard in the hands of one strategy process: its lease, warm start and checkpoints.

Shard n's state belongs to the shard, not to a replica: whoever holds its lease
(`strategy:lease:<n>`, a token with a TTL, renewed in every commit) runs it. Taking
a shard over is exact:

1. claim every entry the group has pending on `ticks:<n>` (the previous owner's
   unfinished batch), so they are processed next, in order;
2. load the checkpoint (`strategy:checkpoint:<n>`: runner state + the entry id it
   covers) and replay the entries after it up to `strategy:progress[n]` — the last
   entry whose signals were published — without publishing again;
3. read on through the group (own pending first, then new entries).

So a SIGKILL, a restart or a change of REPLICA_COUNT continues with the state an
uninterrupted run would have, and publishes each signal once.
"""

from __future__ import annotations

import logging
import os
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import cast

import redis.exceptions
from redis.asyncio import Redis

from tradebot.common import keys, wire
from tradebot.common.models import PriceTick
from tradebot.strategy.base import Strategy
from tradebot.strategy.runner import StrategyRunner

log = logging.getLogger(__name__)
GROUP = "strategy"
"""The consumer group on every tick shard (each shard has exactly one reader in it)."""
LEASE_SECONDS = 15.0
REPLAY_CHUNK = 2_000


def text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def entry_key(entry_id: bytes | str) -> tuple[int, int]:
    """A stream entry id as a comparable (milliseconds, sequence)."""
    millis, _, sequence = text(entry_id).partition("-")
    return int(millis), int(sequence or 0)


def lease_token(consumer: str) -> str:
    """`<consumer>/<process>`: the consumer name says who, the suffix which incarnation."""
    return f"{consumer}/{os.getpid()}-{uuid.uuid4().hex[:8]}"


def same_identity(holder: str, token: str) -> bool:
    """A lease held by an earlier incarnation of this replica (same consumer name) is ours to take."""
    return holder.partition("/")[0] == token.partition("/")[0]


@dataclass
class OwnedShard:
    shard: int
    stream: str
    runner: StrategyRunner
    position: str = "0-0"
    """The last entry whose signals are published."""
    checkpointed_at: float = field(default_factory=time.monotonic)
    replayed: int = 0
    cold: list[str] = field(default_factory=list)
    gap: bool = False
    """True when entries after the checkpoint were trimmed away before the replay."""


async def try_lease(client: Redis, shard: int, token: str) -> str | None:
    """Take shard n's lease if it is free (or ours); None when taken, else the holder who had it."""
    key = keys.strategy_lease_key(shard)
    if await client.set(key, token, px=int(LEASE_SECONDS * 1000), nx=True):
        return ""
    holder = await client.get(key)
    if holder is not None and same_identity(text(holder), token):
        await client.set(key, token, px=int(LEASE_SECONDS * 1000))
        return text(holder)
    return None


async def lease_holder(client: Redis, shard: int) -> str | None:
    raw = await client.get(keys.strategy_lease_key(shard))
    return text(raw) if raw else None


async def release_leases(client: Redis, shards: list[int], token: str) -> None:
    """Give back the leases we still hold (a clean stop hands over at once, not after the TTL)."""
    for shard in shards:
        key = keys.strategy_lease_key(shard)
        async with client.pipeline(transaction=True) as pipe:
            try:
                await pipe.watch(key)
                if await pipe.get(key) == token.encode():
                    pipe.multi()
                    pipe.delete(key)
                    await pipe.execute()
            except redis.exceptions.WatchError:
                pass


async def take_over(
    client: Redis, shard: int, stream: str, consumer: str, strategies: list[Strategy], grace: float
) -> OwnedShard:
    """Claim the shard's pending entries, restore its checkpoint and replay up to its progress."""
    try:
        await client.xgroup_create(stream, GROUP, id="0", mkstream=True)
    except redis.exceptions.ResponseError as error:
        if "BUSYGROUP" not in str(error):
            raise
    start = "0-0"
    while True:  # the previous owner's unacknowledged entries become ours, processed first
        reply = await client.xautoclaim(stream, GROUP, consumer, 0, start_id=start, count=1000)
        start = reply[0].decode() if isinstance(reply[0], bytes) else reply[0]
        if start == "0-0":
            break
    owned = OwnedShard(shard, stream, StrategyRunner(strategies, grace))
    raw = await client.get(keys.strategy_checkpoint_key(shard))
    checkpoint_position = "0-0"
    if raw:
        try:
            checkpoint_position, owned.cold = owned.runner.restore(
                raw if isinstance(raw, bytes) else raw.encode()
            )
        except Exception as error:  # unreadable (an older format): start the shard cold, and say so
            log.error(
                "unreadable strategy checkpoint; starting cold", extra={"shard": shard, "error": str(error)}
            )
            owned.runner = StrategyRunner(strategies, grace)
            owned.cold = [s.name for s in strategies]
    progress = await client.hget(keys.STRATEGY_PROGRESS, str(shard))
    owned.position = text(progress) if progress else checkpoint_position
    owned.gap = await _trimmed_since(client, stream, checkpoint_position)
    owned.replayed = await replay(client, owned, checkpoint_position, owned.position)
    owned.runner.resume(time.time())
    return owned


async def replay(client: Redis, owned: OwnedShard, after: str, until: str) -> int:
    """Feed entries (after, until] to the runner; their signals were published already."""
    if entry_key(until) <= entry_key(after):
        return 0
    count, cursor = 0, f"({after}"
    while True:
        entries = await client.xrange(owned.stream, min=cursor, max=until, count=REPLAY_CHUNK) or []
        for _, fields in entries:
            try:
                tick = wire.decode(cast("Mapping[bytes, bytes]", fields))
            except wire.WireError:
                continue  # dead-lettered when it was first read
            if isinstance(tick, PriceTick):
                owned.runner.on_tick(tick)
                count += 1
        if len(entries) < REPLAY_CHUNK:
            return count
        cursor = f"({text(entries[-1][0] or b'0-0')}"


async def _trimmed_since(client: Redis, stream: str, position: str) -> bool:
    """Whether entries newer than `position` were trimmed away (the replay would miss them)."""
    try:
        info = await client.xinfo_stream(stream)
    except redis.exceptions.ResponseError:
        return False
    deleted = info.get("max-deleted-entry-id") or b"0-0"
    return entry_key(deleted) > entry_key(position)


async def save_checkpoint(client: Redis, owned: OwnedShard) -> None:
    await client.set(keys.strategy_checkpoint_key(owned.shard), owned.runner.checkpoint(owned.position))
    owned.checkpointed_at = time.monotonic()
