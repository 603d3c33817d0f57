"""Redis Streams: publishing in pipelines and consuming through consumer groups.

Consumers read their own pending entries first after a restart, reclaim entries
left pending by dead consumers (XAUTOCLAIM), acknowledge only what the caller
says is durable, and move entries they cannot decode to `<stream>:dead` with the
reason, instead of crashing on them.
"""

from __future__ import annotations

import logging
import os
import socket
import time
from collections import defaultdict
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass

import redis.exceptions
from redis.asyncio import Redis
from redis.asyncio.client import Pipeline

from tradebot.common import wire
from tradebot.common.keys import FILLS, ORDERS, POSITIONS, SIGNALS, TICKS, dead_letter_stream
from tradebot.common.models import Fill, Message, Order, Position, PriceTick, TradeSignal

DEAD_LETTER_MAXLEN = 100_000
STREAM_MODELS: dict[str, type[Message]] = {
    TICKS: PriceTick,
    SIGNALS: TradeSignal,
    ORDERS: Order,
    FILLS: Fill,
    POSITIONS: Position,
}

log = logging.getLogger(__name__)


def consumer_name(service_id: str) -> str:
    """Stable per pod/host, so a restarted process finds its own pending entries."""
    return os.environ.get("CONSUMER_NAME") or f"{service_id}-{socket.gethostname()}"


@dataclass(frozen=True, slots=True)
class Delivery:
    """One decoded entry, to be acknowledged once its effect is durable."""

    stream: str
    entry_id: bytes
    message: Message
    traceparent: str | None


# Appends a batch of entries to one stream in a single command, then trims the stream once.
# Per entry, ARGV holds its field count and field/value pairs. One EVALSHA instead of one
# XADD per entry cuts the client's per-command cost, which dominates at high tick rates.
APPEND_BATCH_SCRIPT = """
local i, appended = 2, 0
while i <= #ARGV do
  local pairs = tonumber(ARGV[i])
  redis.call('XADD', KEYS[1], '*', unpack(ARGV, i + 1, i + 2 * pairs))
  i = i + 1 + 2 * pairs
  appended = appended + 1
end
redis.call('XTRIM', KEYS[1], 'MAXLEN', '~', ARGV[1])
return appended
"""


class Publisher:
    """Appends messages to streams, trimming them to an approximate MAXLEN."""

    def __init__(self, redis: Redis, maxlen: int) -> None:
        self.redis = redis
        self.maxlen = maxlen
        self._append_batch = redis.register_script(APPEND_BATCH_SCRIPT)

    def add_to(self, pipe: Pipeline, stream: str, message: Message, traceparent: str | None = None) -> None:
        """Queue one XADD on a pipeline (lets callers make it part of a MULTI)."""
        pipe.xadd(stream, wire.encode(message, traceparent), maxlen=self.maxlen, approximate=True)

    async def append_encoded(
        self, pipe: Pipeline, stream: str, entries: Sequence[dict[bytes, bytes]]
    ) -> None:
        """Queue already-encoded entries on a pipeline as one batched append."""
        args: list = [self.maxlen]
        for fields in entries:
            args.append(len(fields))
            for item in fields.items():
                args.extend(item)
        await self._append_batch(keys=[stream], args=args, client=pipe)

    async def publish(self, stream: str, items: Iterable[tuple[Message, str | None]]) -> int:
        """Append many messages in one round trip; returns how many were sent."""
        entries = [wire.encode(message, traceparent) for message, traceparent in items]
        if entries:
            pipe = self.redis.pipeline(transaction=False)
            await self.append_encoded(pipe, stream, entries)
            await pipe.execute()
        return len(entries)


DeadLetterHook = Callable[[str, bytes, str], Awaitable[None]]


class Consumer:
    """Reads streams through one consumer group as one named consumer."""

    def __init__(
        self,
        redis: Redis,
        group: str,
        name: str,
        streams: Sequence[str],
        count: int = 1000,
        block_ms: int = 1000,
        claim_idle_ms: int = 30_000,
        on_dead_letter: DeadLetterHook | None = None,
    ) -> None:
        self.redis = redis
        self.group = group
        self.name = name
        self.streams = list(streams)
        self.count = count
        self.block_ms = block_ms
        self.claim_idle_ms = claim_idle_ms
        self.on_dead_letter = on_dead_letter
        self._own_pending_cursor: dict[str, bytes] = {}
        self._next_claim_at = 0.0

    async def setup(self) -> None:
        """Create the group on each stream (from its start) and replay our own pending entries."""
        for stream in self.streams:
            try:
                await self.redis.xgroup_create(stream, self.group, id="0", mkstream=True)
            except redis.exceptions.ResponseError as error:
                if "BUSYGROUP" not in str(error):
                    raise
        self._own_pending_cursor = {stream: b"0" for stream in self.streams}
        self._next_claim_at = time.monotonic() + self.claim_idle_ms / 1000

    async def read(self) -> list[Delivery]:
        """The next batch: own pending first, then reclaimed stale entries, then new ones."""
        if self._own_pending_cursor:
            return await self._read_own_pending()
        if time.monotonic() >= self._next_claim_at:
            self._next_claim_at = time.monotonic() + self.claim_idle_ms / 2000
            claimed = await self._reclaim_stale()
            if claimed:
                return claimed
        response = await self.redis.xreadgroup(
            self.group, self.name, {s: ">" for s in self.streams}, count=self.count, block=self.block_ms
        )
        return await self._decode(response)

    async def ack(self, deliveries: Iterable[Delivery]) -> None:
        by_stream: dict[str, list[bytes]] = defaultdict(list)
        for delivery in deliveries:
            by_stream[delivery.stream].append(delivery.entry_id)
        if not by_stream:
            return
        pipe = self.redis.pipeline(transaction=False)
        for stream, ids in by_stream.items():
            pipe.xack(stream, self.group, *ids)
        await pipe.execute()

    async def backlog(self) -> dict[str, dict[str, float]]:
        """Per stream: entries pending (delivered, not acknowledged) and lag in ms behind the head."""
        result: dict[str, dict[str, float]] = {}
        for stream in self.streams:
            try:
                groups = await self.redis.xinfo_groups(stream)
                info = await self.redis.xinfo_stream(stream)
            except redis.exceptions.ResponseError:
                continue
            group = next((g for g in groups if g["name"] == self.group.encode()), None)
            if group is None:
                continue
            head = _id_millis(info.get("last-generated-id") or b"0-0")
            delivered = _id_millis(group.get("last-delivered-id") or b"0-0")
            result[stream] = {"pending": group.get("pending", 0), "lag_ms": max(0, head - delivered)}
        return result

    async def _read_own_pending(self) -> list[Delivery]:
        response = await self.redis.xreadgroup(
            self.group, self.name, dict(self._own_pending_cursor), count=self.count
        )
        for stream_name, entries in response or []:
            stream = _text(stream_name)
            if entries:
                self._own_pending_cursor[stream] = entries[-1][0]
            else:
                self._own_pending_cursor.pop(stream, None)
        if not response:
            self._own_pending_cursor.clear()
        return await self._decode(response)

    async def _reclaim_stale(self) -> list[Delivery]:
        """Take over entries another consumer received but never acknowledged."""
        response = []
        for stream in self.streams:
            reply = await self.redis.xautoclaim(
                stream, self.group, self.name, self.claim_idle_ms, start_id="0-0", count=self.count
            )
            entries = reply[1]
            gone = [entry_id for entry_id, fields in entries if fields is None]
            if gone:  # trimmed away while pending: nothing left to process
                await self.redis.xack(stream, self.group, *gone)
            alive = [(entry_id, fields) for entry_id, fields in entries if fields is not None]
            if alive:
                log.warning("reclaimed stale entries", extra={"stream": stream, "count": len(alive)})
                response.append((stream, alive))
        return await self._decode(response)

    async def _decode(self, response) -> list[Delivery]:
        deliveries: list[Delivery] = []
        for stream_name, entries in response or []:
            stream = _text(stream_name)
            for entry_id, fields in entries:
                if fields is None:
                    continue
                try:
                    message = wire.decode(fields)
                    expected = STREAM_MODELS.get(stream)
                    if expected is not None and not isinstance(message, expected):
                        raise wire.WireError(f"a {message.kind} does not belong on stream {stream!r}")
                except wire.WireError as error:
                    await self.dead_letter(stream, entry_id, fields, str(error))
                    continue
                deliveries.append(Delivery(stream, entry_id, message, wire.traceparent_of(fields)))
        return deliveries

    async def dead_letter(self, stream: str, entry_id: bytes, fields: dict, reason: str) -> None:
        """Move an entry to `<stream>:dead` with the reason, atomically with its ACK."""
        record = {
            **{bytes(k): v for k, v in fields.items()},
            b"dead:reason": reason[:2000].encode(),
            b"dead:stream": stream.encode(),
            b"dead:id": entry_id,
            b"dead:group": self.group.encode(),
        }
        pipe = self.redis.pipeline(transaction=True)
        pipe.xadd(dead_letter_stream(stream), record, maxlen=DEAD_LETTER_MAXLEN, approximate=True)
        pipe.xack(stream, self.group, entry_id)
        await pipe.execute()
        log.error(
            "dead-lettered an undecodable entry",
            extra={"stream": stream, "entry_id": entry_id.decode(), "reason": reason[:300]},
        )
        if self.on_dead_letter is not None:
            await self.on_dead_letter(stream, entry_id, reason)


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _id_millis(entry_id: bytes | str) -> int:
    return int(_text(entry_id).split("-", 1)[0])
