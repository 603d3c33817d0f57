"""The strategy service: replica k of R runs the strategies on the tick shards it owns.

Replica k owns the shards n with n mod R = k (`keys.owned_shards`); each shard is
read through the one group `strategy` by the holder of its lease (see `shards`).
Every batch is committed in one Redis transaction: the signals, the shard's
progress (`strategy:progress`), the acknowledgements and the lease renewal — and
only while the lease is still ours. With REPLICA_INDEX/REPLICA_COUNT set (a
StatefulSet), the replica's heartbeat is `service:strategy-<k>:heartbeat`.
"""

from __future__ import annotations

import logging
import time
from collections import defaultdict

import redis.exceptions
from redis.asyncio.client import Pipeline

from tradebot.common import bus, keys, wire
from tradebot.common.models import PriceTick, TradeSignal
from tradebot.common.service import ServiceContext
from tradebot.common.settings import Settings
from tradebot.common.telemetry import traced
from tradebot.strategy import shards as shard_ops
from tradebot.strategy.base import Strategy
from tradebot.strategy.readings import (
    READINGS_SECONDS,
    LastSignals,
    ReadingsPublisher,
    publish_config,
    remember,
)
from tradebot.strategy.registry import build_strategies
from tradebot.strategy.shards import GROUP, LEASE_SECONDS, OwnedShard

log = logging.getLogger(__name__)
LEASE_RETRY_SECONDS = 2.0


def replica_service_id(settings: Settings) -> str:
    """`strategy`, or `strategy-<k>` for a replica of a StatefulSet (its own heartbeat)."""
    replicated = {"replica_index", "replica_count"} & settings.model_fields_set or settings.replica_count > 1
    return f"strategy-{settings.replica_index}" if replicated else "strategy"


class StrategyService:
    def __init__(self, settings: Settings, strategies: list[Strategy] | None = None) -> None:
        self.settings = settings
        self.strategies = (
            strategies
            if strategies is not None
            else build_strategies(settings.strategies, settings.strategy_params)
        )
        self.service_id = replica_service_id(settings)
        self.wanted = keys.owned_shards(settings.replica_index, settings.replica_count, settings.tick_shards)
        self.owned: dict[int, OwnedShard] = {}
        self.by_stream: dict[str, OwnedShard] = {}
        self.consumer: bus.Consumer | None = None
        self.last_signals: LastSignals = {}
        self.readings = ReadingsPublisher()

    async def run(self, ctx: ServiceContext) -> None:
        self.ctx = ctx
        self.name = bus.consumer_name(self.service_id)
        self.token = shard_ops.lease_token(self.name)
        self.publisher = ctx.publisher()
        self.owned, self.by_stream = {}, {}
        log.info(
            "evaluating ticks",
            extra={
                "strategies": [s.name for s in self.strategies],
                "shards": self.wanted,
                "token": self.token,
            },
        )
        next_lease_try, renewed_at, readings_due = 0.0, time.monotonic(), 0.0
        await publish_config(ctx.redis, self.strategies)
        try:
            while not ctx.stopping.is_set():
                ctx.progressed()
                if len(self.owned) < len(self.wanted) and time.monotonic() >= next_lease_try:
                    await self._acquire_free_shards()
                    next_lease_try = time.monotonic() + LEASE_RETRY_SECONDS
                    ctx.ready = True
                if self.consumer is None:
                    await ctx.sleep(0.2)
                    continue
                deliveries = await self.consumer.read()
                signals = self._evaluate(deliveries)
                due = time.monotonic() - renewed_at > LEASE_SECONDS / 3
                if deliveries or signals or due:
                    await self._commit(deliveries, signals)
                    renewed_at = time.monotonic()
                    ctx.handled_batch(len(deliveries))
                await self._checkpoint_due()
                if time.monotonic() >= readings_due:
                    runners = (owned.runner for owned in self.owned.values())
                    await self.readings.publish(ctx.redis, runners, self.last_signals)
                    readings_due = time.monotonic() + READINGS_SECONDS
        finally:
            await self._hand_back()

    # ------------------------------------------------------------------ shards
    async def _acquire_free_shards(self) -> None:
        ctx, changed = self.ctx, False
        waiting = []
        for shard in self.wanted:
            if shard in self.owned:
                continue
            previous = await shard_ops.try_lease(ctx.redis, shard, self.token)
            if previous is None:
                waiting.append(f"{shard} (held by {await shard_ops.lease_holder(ctx.redis, shard)})")
                continue
            stream = keys.tick_stream(shard, self.settings.tick_shards)
            owned = await shard_ops.take_over(
                ctx.redis, shard, stream, self.name, self.strategies, self.settings.bar_close_grace
            )
            self.owned[shard], self.by_stream[stream] = owned, owned
            ctx.counters["ticks_replayed"] += owned.replayed
            ctx.counters["warm_start_gaps"] += owned.gap
            log.info(
                "took over tick shard",
                extra={"shard": shard, "position": owned.position, "replayed": owned.replayed,
                       "cold": owned.cold, "previous_holder": previous or None, "trimmed_gap": owned.gap},
            )  # fmt: skip
            changed = True
        ctx.counters["shards_owned"] = len(self.owned)
        ctx.status_message = f"waiting for tick shards {', '.join(waiting)}" if waiting else None
        if changed:
            await self._rebuild_consumer()

    async def _rebuild_consumer(self) -> None:
        """One consumer over the owned shards' streams (rebuilt when the set changes)."""
        ctx = self.ctx
        if self.consumer in ctx.consumers:
            ctx.consumers.remove(self.consumer)
        if not self.owned:
            self.consumer = None
            return

        async def count_dead_letter(stream: str, entry_id: bytes, reason: str) -> None:
            await ctx.count_error(f"dead-lettered {stream} entry {entry_id.decode()}: {reason}")

        self.consumer = bus.Consumer(
            ctx.redis,
            group=GROUP,
            name=self.name,
            streams=[owned.stream for owned in self.owned.values()],
            count=self.settings.batch_size,
            claim_idle_ms=int(self.settings.claim_idle_seconds * 1000),
            on_dead_letter=count_dead_letter,
        )
        await self.consumer.setup()
        ctx.consumers.append(self.consumer)

    def _drop(self, shards: list[int]) -> None:
        for shard in shards:
            owned = self.owned.pop(shard, None)
            if owned is not None:
                self.by_stream.pop(owned.stream, None)
                log.warning(
                    "lost the lease of a tick shard; another process runs it now", extra={"shard": shard}
                )

    # ------------------------------------------------------------------ evaluation
    def _evaluate(self, deliveries: list[bus.Delivery]) -> dict[int, list[tuple[TradeSignal, str | None]]]:
        """Signals per shard: the ticks' own, then bars of quiet symbols closed by the clock."""
        signals: dict[int, list[tuple[TradeSignal, str | None]]] = defaultdict(list)
        now = time.time()
        for delivery in deliveries:
            owned = self.by_stream.get(delivery.stream)
            tick = delivery.message
            if owned is None or not isinstance(tick, PriceTick):
                continue
            with traced(__name__, "evaluate tick", delivery.traceparent, symbol=tick.symbol) as tp:
                found = owned.runner.on_tick(tick, now)
            signals[owned.shard].extend((signal, tp) for signal in found)
        for owned in self.owned.values():
            signals[owned.shard].extend((signal, None) for signal in owned.runner.on_clock(now))
        for pairs in signals.values():
            remember(self.last_signals, (pair[0] for pair in pairs))
        return signals

    async def _commit(
        self, deliveries: list[bus.Delivery], signals: dict[int, list[tuple[TradeSignal, str | None]]]
    ) -> None:
        """Publish, record progress, acknowledge, renew leases: all or nothing, while the leases are ours."""
        ctx = self.ctx
        while self.owned:
            shards = sorted(self.owned)
            lease_keys = [keys.strategy_lease_key(n) for n in shards]
            try:
                async with ctx.redis.pipeline(transaction=True) as pipe:
                    await pipe.watch(*lease_keys)
                    holders = await pipe.mget(lease_keys)
                    lost = [
                        n for n, holder in zip(shards, holders, strict=True) if holder != self.token.encode()
                    ]
                    if lost:
                        self._drop(lost)
                        await self._rebuild_consumer()
                        continue
                    pipe.multi()
                    positions = await self._queue_commit(pipe, deliveries, signals)
                    await pipe.execute()
            except redis.exceptions.WatchError:
                continue  # a lease changed hands meanwhile: check again which are still ours
            for stream, position in positions.items():
                self.by_stream[stream].position = position
            break
        published = sum(len(v) for n, v in signals.items() if n in self.owned)
        ctx.counters["ticks_consumed"] += sum(1 for d in deliveries if d.stream in self.by_stream)
        ctx.counters["signals_published"] += published
        ctx.counters["shards_owned"] = len(self.owned)

    async def _queue_commit(
        self,
        pipe: Pipeline,
        deliveries: list[bus.Delivery],
        signals: dict[int, list[tuple[TradeSignal, str | None]]],
    ) -> dict[str, str]:
        """Queue the batch on a MULTI; returns each stream's new position (once it commits)."""
        for shard in self.owned:
            pipe.set(keys.strategy_lease_key(shard), self.token, px=int(LEASE_SECONDS * 1000))
        entries = [
            wire.encode(signal, tp)
            for shard in sorted(signals)
            if shard in self.owned
            for signal, tp in signals[shard]
        ]
        if entries:
            await self.publisher.append_encoded(pipe, keys.SIGNALS, entries)
        acked: dict[str, list[bytes]] = defaultdict(list)
        for delivery in deliveries:
            if delivery.stream in self.by_stream:
                acked[delivery.stream].append(delivery.entry_id)
        positions = {stream: max(ids, key=shard_ops.entry_key).decode() for stream, ids in acked.items()}
        for stream, ids in acked.items():
            pipe.xack(stream, GROUP, *ids)
        for stream, position in positions.items():
            pipe.hset(keys.STRATEGY_PROGRESS, str(self.by_stream[stream].shard), position)
        return positions

    async def _checkpoint_due(self) -> None:
        every = self.settings.strategy_checkpoint_seconds
        for owned in list(self.owned.values()):
            if time.monotonic() - owned.checkpointed_at >= every:
                await shard_ops.save_checkpoint(self.ctx.redis, owned)
                self.ctx.counters["checkpoints"] += 1

    async def _hand_back(self) -> None:
        """On a clean stop: checkpoint every shard and release its lease for the next owner.

        After a failure the shards are left as they are: their state may be ahead of what was
        committed, and whoever takes them over (this process, restarted) rebuilds it exactly.
        """
        if not self.ctx.stopping.is_set():
            return
        try:
            for owned in self.owned.values():
                await shard_ops.save_checkpoint(self.ctx.redis, owned)
            await shard_ops.release_leases(self.ctx.redis, sorted(self.owned), self.token)
        except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError, OSError):
            log.warning("could not hand the tick shards back; their leases expire by themselves")
