"""The storage service: every stream, through the `storage` group, into the database.

A batch is acknowledged only after its transaction commits. If the process dies
mid-batch, the entries stay pending and are written again on restart (or by
another replica after the claim timeout); the writer's conflict rules make that
replay store nothing twice. A message the database refuses for a data reason
goes to the dead-letter stream with the database's words; the rest is stored.
Between batches it also records the account's equity every EQUITY_SNAPSHOT_SECONDS.
"""

from __future__ import annotations

import asyncio
import logging
import time

from tradebot.common import bus, keys, wire
from tradebot.common.bus import Delivery
from tradebot.common.connections import connect_postgres_once
from tradebot.common.service import ServiceContext
from tradebot.common.settings import Settings
from tradebot.common.telemetry import traced, tracing_enabled
from tradebot.storage.equity import next_snapshot, take_snapshot
from tradebot.storage.schema import TickPolicy, ensure_schema
from tradebot.storage.writer import BatchWriter

log = logging.getLogger(__name__)


def stored_streams(tick_shards: int) -> list[str]:
    """Every tick shard and the trading streams."""
    return [*keys.tick_streams(tick_shards), keys.SIGNALS, keys.ORDERS, keys.FILLS, keys.POSITIONS]


class StorageService:
    service_id = "storage"

    def __init__(self, settings: Settings) -> None:
        self.database_url = settings.database_url
        self.source = settings.data_source
        self.streams = stored_streams(settings.tick_shards)
        self.policy = TickPolicy(retention=settings.tick_retention)
        self.snapshot_every = settings.equity_snapshot_seconds
        self.starting_cash = settings.starting_cash

    async def run(self, ctx: ServiceContext) -> None:
        consumer = ctx.consumer(self.streams)
        conn = await connect_postgres_once(self.database_url, "tradebot-storage")
        try:
            writer = BatchWriter(conn, await ensure_schema(conn, (self.source,), self.policy))
            await consumer.setup()
            ctx.ready = True
            log.info("storing streams", extra={"streams": self.streams})
            # The next batch is read from Redis while the previous one is written to PostgreSQL,
            # so their round trips overlap; one write at a time keeps the connection's order.
            writing: asyncio.Task | None = None
            snapshot_due = 0.0
            try:
                while not ctx.stopping.is_set():
                    ctx.progressed()
                    deliveries = await consumer.read()
                    if writing is not None:
                        await writing
                        writing = None
                    now = time.time()
                    if now >= snapshot_due:  # between writes: the connection is free
                        await take_snapshot(conn, ctx.redis, self.starting_cash, now, self.snapshot_every)
                        snapshot_due = next_snapshot(now, self.snapshot_every)
                    if deliveries:
                        writing = asyncio.create_task(self._store(ctx, writer, consumer, deliveries))
            finally:
                if writing is not None:
                    await writing
        except BaseException:
            conn.terminate()  # the server may be gone: a graceful close could wait forever
            raise
        else:
            await conn.close()

    async def _store(
        self, ctx: ServiceContext, writer: BatchWriter, consumer: bus.Consumer, deliveries: list[Delivery]
    ) -> None:
        """Write a batch, then acknowledge it: nothing is acknowledged before it is committed."""
        refused = await writer.write_or_refuse([d.message for d in deliveries])
        for index, reason in refused:
            delivery = deliveries[index]
            fields = wire.encode(delivery.message, delivery.traceparent)
            await consumer.dead_letter(
                delivery.stream, delivery.entry_id, fields, f"refused by the database: {reason}", ack=False
            )
        await consumer.ack(deliveries)
        self._trace(deliveries)
        ctx.counters["entries_stored"] += len(deliveries) - len(refused)
        ctx.handled_batch(len(deliveries))

    @staticmethod
    def _trace(deliveries: list[Delivery]) -> None:
        """End each entry's trace here: the span marks it durable."""
        if tracing_enabled():
            for delivery in deliveries:
                with traced(__name__, f"stored {delivery.message.kind}", delivery.traceparent):
                    pass
