"""Redis Streams: publishing in batches and consuming through consumer groups.

Publishers put up to `wire.MAX_BATCH` messages in one entry, and trim a stream
only below the oldest entry some consumer group has not acknowledged (so a
stopped or slow consumer never loses anything to trimming); a stream that stays
over STREAM_MAXLEN because a group is behind raises an alarm instead.

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
from collections.abc import Awaitable, Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any, cast

import msgspec
import redis.exceptions
from redis.asyncio import Redis
from redis.asyncio.client import Pipeline
from redis.typing import KeyT, StreamIdT

from tradebot.common import wire
from tradebot.common.keys import CONTROLS, FILLS, ORDERS, POSITIONS, SIGNALS, TICKS, dead_letter_stream
from tradebot.common.models import Control, Fill, Message, Order, Position, PriceTick, TradeSignal

DEAD_LETTER_MAXLEN = 100_000
DEAD_LETTER_FIELD_BYTES = 16_384
"""Bytes of one field a dead letter keeps: a whole batch of ticks fits, a huge bad entry is cut."""
TRIM_INTERVAL = 1.0  # seconds between trims of a stream a publisher writes
STREAM_MODELS: dict[str, type[Message]] = {
    TICKS: PriceTick,
    SIGNALS: TradeSignal,
    ORDERS: Order,
    FILLS: Fill,
    POSITIONS: Position,
    CONTROLS: Control,
}

log = logging.getLogger(__name__)


def consumer_name(service_id: str) -> str:
    """Stable per pod/host, so a restarted process finds its own pending entries."""
    return os.environ.get("CONSUMER_NAME") or f"{service_id}-{socket.gethostname()}"


def stream_model(stream: str) -> type[Message] | None:
    """The model a stream carries: `ticks:<n>` (a tick shard) carries ticks like `ticks`."""
    base, _, shard = stream.partition(":")
    return STREAM_MODELS.get(base) if not shard or shard.isdigit() else None


class Delivery(msgspec.Struct, frozen=True, gc=False):
    """One decoded message, to be acknowledged once its effect is durable.

    Messages of one entry share its `entry_id`: acknowledge them together (as `read` returns
    them). Untracked by the garbage collector, like the messages, as there is one per tick.
    """

    stream: str
    entry_id: bytes
    message: Message
    traceparent: str | None


# Trims a stream to about ARGV[1] entries, never below the oldest entry a consumer group still
# needs (its oldest pending entry, or the one after its last delivered). Returns the length left
# and the group holding the stream back (false when none does).
TRIM_SCRIPT = """
local function older(a, b)
  local ams, aseq = string.match(a, '(%d+)-(%d+)')
  local bms, bseq = string.match(b, '(%d+)-(%d+)')
  ams, bms = tonumber(ams), tonumber(bms)
  return ams < bms or (ams == bms and tonumber(aseq) < tonumber(bseq))
end
local maxlen = tonumber(ARGV[1])
local length = redis.call('XLEN', KEYS[1])
if length <= maxlen then return {length, false} end
local floor, holder = nil, false
for _, fields in ipairs(redis.call('XINFO', 'GROUPS', KEYS[1])) do
  local group = {}
  for i = 1, #fields, 2 do group[fields[i]] = fields[i + 1] end
  local needed = group['last-delivered-id']
  if group['pending'] > 0 then needed = redis.call('XPENDING', KEYS[1], group['name'])[2] end
  if floor == nil or older(needed, floor) then floor, holder = needed, group['name'] end
end
if floor == nil then
  redis.call('XTRIM', KEYS[1], 'MAXLEN', '~', maxlen)
else
  redis.call('XTRIM', KEYS[1], 'MINID', '~', floor, 'LIMIT', length - maxlen)
end
length = redis.call('XLEN', KEYS[1])
if length <= maxlen then holder = false end
return {length, holder}
"""

OverflowHook = Callable[[str, int, str | None], Awaitable[None]]
"""Called with (stream, length, group holding it back) while a stream stays over its limit,
and with (stream, length, None) once it is back under."""


class Publisher:
    """Appends messages to streams in batches and trims them behind their slowest consumer group."""

    def __init__(self, redis: Redis, maxlen: int, on_overflow: OverflowHook | None = None) -> None:
        self.redis = redis
        self.maxlen = maxlen
        self.on_overflow = on_overflow
        self.overflowing: dict[str, int] = {}  # stream -> its length, while over `maxlen`
        self._trim = redis.register_script(TRIM_SCRIPT)
        self._next_trim: dict[str, float] = {}
        self._added: dict[str, int] = {}  # stream -> entries appended since its last trim
        self._trim_every = max(1, maxlen // 10)  # so a stream overshoots its limit by at most 10%

    def add_to(self, pipe: Pipeline, stream: str, message: Message, traceparent: str | None = None) -> None:
        """Queue one message as its own entry on a pipeline (lets callers make it part of a MULTI)."""
        pipe.xadd(stream, cast(Any, wire.encode(message, traceparent)))
        self._count(stream, 1)

    def add_batch_to(self, pipe: Pipeline, stream: str, items: Sequence[tuple[Message, str | None]]) -> None:
        """Queue messages in batched entries on a pipeline (one command per MAX_BATCH messages)."""
        self._queue(pipe, stream, _batched(items))

    async def append_encoded(
        self, pipe: Pipeline, stream: str, entries: Iterable[dict[bytes, bytes]]
    ) -> None:
        """Queue already-encoded entries on a pipeline."""
        self._queue(pipe, stream, entries)

    def _queue(self, pipe: Pipeline, stream: str, entries: Iterable[dict[bytes, bytes]]) -> None:
        added = 0
        for fields in entries:
            pipe.xadd(stream, cast(Any, fields))
            added += 1
        self._count(stream, added)

    def _count(self, stream: str, added: int) -> None:
        self._next_trim.setdefault(stream, 0.0)
        self._added[stream] = self._added.get(stream, 0) + added

    async def publish(self, stream: str, items: Iterable[tuple[Message, str | None]]) -> int:
        """Append messages in batched entries, in one round trip; returns how many were sent."""
        items = list(items)
        if items:
            pipe = self.redis.pipeline(transaction=False)
            self.add_batch_to(pipe, stream, items)
            await pipe.execute()
            await self.trim()
        return len(items)

    async def trim(self, force: bool = False) -> None:
        """Trim each stream written here every TRIM_INTERVAL, or sooner once a tenth of its limit
        was appended since the last trim (a fast producer's overshoot stays bounded whatever the
        clock); raise the alarm for any that stays over the limit because a group has not
        acknowledged its entries."""
        now = time.monotonic()
        for stream, due in list(self._next_trim.items()):
            if now < due and self._added.get(stream, 0) < self._trim_every and not force:
                continue
            self._next_trim[stream] = now + TRIM_INTERVAL
            self._added[stream] = 0
            length, holder = await self._trim(keys=[stream], args=[self.maxlen])
            if holder:
                await self._overflow(stream, length, holder.decode())
            elif self.overflowing.pop(stream, None) is not None:
                log.warning("stream back under its limit", extra={"stream": stream, "length": length})
                if self.on_overflow is not None:
                    await self.on_overflow(stream, length, None)

    async def _overflow(self, stream: str, length: int, group: str) -> None:
        first = stream not in self.overflowing
        self.overflowing[stream] = length
        if first:
            log.error(
                "stream over STREAM_MAXLEN: a consumer group has not acknowledged its entries, so"
                " nothing older is trimmed (Redis memory grows until it catches up)",
                extra={"stream": stream, "length": length, "maxlen": self.maxlen, "group": group},
            )
        if self.on_overflow is not None:
            await self.on_overflow(stream, length, group)


def _batched(items: Sequence[tuple[Message, str | None]]) -> Iterator[dict[bytes, bytes]]:
    for start in range(0, len(items), wire.MAX_BATCH):
        messages, traceparents = zip(*items[start : start + wire.MAX_BATCH], strict=True)
        yield wire.encode_batch(messages, traceparents)


DeadLetterHook = Callable[[str, bytes, str], Awaitable[None]]


class Consumer:
    """Reads streams through one consumer group as one named consumer.

    `count` is how many messages a read should bring (about): entries carry from one message
    to a batch of `wire.MAX_BATCH`, so the entries asked for follow what recent ones held.
    """

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
        self._per_entry = float(wire.MAX_BATCH)  # messages per entry, as recently read

    @property
    def entries_per_read(self) -> int:
        return max(1, round(self.count / self._per_entry))

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

    async def read_all(self) -> list[Delivery]:
        """Every entry there is now: batches until one comes back short."""
        found: list[Delivery] = []
        while True:
            batch = await self.read()
            found.extend(batch)
            if len(batch) < self.count:
                return found

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
            self.group,
            self.name,
            {s: ">" for s in self.streams},
            count=self.entries_per_read,
            block=self.block_ms,
        )
        return await self._decode(response)

    async def ack(self, deliveries: Iterable[Delivery]) -> None:
        """Acknowledge the entries of these deliveries (each entry once)."""
        by_stream: dict[str, dict[bytes, None]] = defaultdict(dict)
        for delivery in deliveries:
            by_stream[delivery.stream][delivery.entry_id] = None
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
        cursors: dict[KeyT, StreamIdT] = {stream: at for stream, at in self._own_pending_cursor.items()}
        response: Any = await self.redis.xreadgroup(
            self.group, self.name, cursors, count=self.entries_per_read
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
                stream, self.group, self.name, self.claim_idle_ms, start_id="0-0", count=self.entries_per_read
            )
            entries = reply[1]
            gone = [entry_id for entry_id, fields in entries if fields is None]
            gone += reply[2] if len(reply) > 2 else []  # Redis 7 lists deleted ids apart
            for entry_id in gone:  # deleted while pending (XDEL, or a trim by another client)
                await self.dead_letter(
                    stream, entry_id, {}, "deleted from the stream before this group processed it"
                )
            alive = [(entry_id, fields) for entry_id, fields in entries if fields is not None]
            if alive:
                log.warning("reclaimed stale entries", extra={"stream": stream, "count": len(alive)})
                response.append((stream, alive))
        return await self._decode(response)

    async def _decode(self, response: Any) -> list[Delivery]:
        deliveries: list[Delivery] = []
        read = 0
        for stream_name, entries in response or []:
            stream = _text(stream_name)
            expected = stream_model(stream)
            read += len(entries)
            for entry_id, fields in entries:
                if fields is None:
                    continue
                try:
                    messages, traceparents, rejected = wire.decode_entry(fields)
                    if expected is not None and messages and not isinstance(messages[0], expected):
                        raise wire.WireError(f"a {messages[0].kind} does not belong on stream {stream!r}")
                except wire.WireError as error:
                    await self.dead_letter(stream, entry_id, fields, str(error))
                    continue
                if rejected:
                    await self._dead_letter_members(stream, entry_id, fields, rejected, ack=not messages)
                deliveries += map(Delivery, [stream] * len(messages), [entry_id] * len(messages),
                                  messages, traceparents)  # fmt: skip
        if read:
            self._per_entry = 0.7 * self._per_entry + 0.3 * max(1.0, len(deliveries) / read)
        return deliveries

    async def _dead_letter_members(
        self,
        stream: str,
        entry_id: bytes,
        fields: Mapping[bytes, bytes],
        rejected: list[tuple[bytes, str]],
        ack: bool,
    ) -> None:
        """Set aside the members of a batch that did not decode; the entry is acknowledged with
        its good members (or here, when it has none)."""
        kind = fields.get(b"k", b"")
        for index, (member, reason) in enumerate(rejected):
            single = {b"v": wire.WIRE_VERSION, b"k": kind, b"d": member}
            await self.dead_letter(stream, entry_id, single, reason, ack=ack and index == len(rejected) - 1)

    async def dead_letter(
        self, stream: str, entry_id: bytes, fields: Mapping[bytes, bytes], reason: str, ack: bool = True
    ) -> None:
        """Move an entry to `<stream>:dead` with the reason, atomically with its ACK."""
        record = {
            **bounded(fields),
            b"dead:reason": reason[:2000].encode(),
            b"dead:stream": stream.encode(),
            b"dead:id": entry_id,
            b"dead:group": self.group.encode(),
        }
        pipe = self.redis.pipeline(transaction=True)
        pipe.xadd(dead_letter_stream(stream), cast(Any, record), maxlen=DEAD_LETTER_MAXLEN, approximate=True)
        if ack:
            pipe.xack(stream, self.group, entry_id)
        await pipe.execute()
        log.error(
            "dead-lettered an entry",
            extra={"stream": stream, "entry_id": entry_id.decode(), "reason": reason[:300]},
        )
        if self.on_dead_letter is not None:
            await self.on_dead_letter(stream, entry_id, reason)


def bounded(fields: Mapping[bytes, bytes]) -> dict[bytes, bytes]:
    """Pure: an entry's fields as its dead letter keeps them. A field over DEAD_LETTER_FIELD_BYTES
    keeps its first bytes and its size (`dead:size:<field>`), so a flood of huge bad entries
    cannot fill Redis with copies of themselves."""
    kept: dict[bytes, bytes] = {}
    for name, value in fields.items():
        value = value if isinstance(value, bytes) else str(value).encode()
        if len(value) > DEAD_LETTER_FIELD_BYTES:
            kept[b"dead:size:" + bytes(name)] = str(len(value)).encode()
            value = value[:DEAD_LETTER_FIELD_BYTES]
        kept[bytes(name)] = value
    return kept


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _id_millis(entry_id: bytes | str) -> int:
    return int(_text(entry_id).split("-", 1)[0])
