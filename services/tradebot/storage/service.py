"""The storage service: every stream, through the `storage` group, into the database.

A batch is acknowledged only after its transaction commits. If the process dies
mid-batch, the entries stay pending and are written again on restart (or by
another replica after the claim timeout); the writer's conflict rules make that
replay store nothing twice.
"""

from __future__ import annotations

import asyncio
import logging

import asyncpg

from tradebot.common import bus, keys
from tradebot.common.bus import Delivery
from tradebot.common.service import ServiceContext
from tradebot.common.settings import Settings
from tradebot.common.telemetry import traced, tracing_enabled
from tradebot.storage.schema import ensure_schema
from tradebot.storage.writer import BatchWriter

log = logging.getLogger(__name__)
STORED_STREAMS = (keys.TICKS, keys.SIGNALS, keys.ORDERS, keys.FILLS, keys.POSITIONS)


class StorageService:
    service_id = "storage"

    def __init__(self, settings: Settings) -> None:
        self.database_url = settings.database_url
        self.source = settings.data_source

    async def run(self, ctx: ServiceContext) -> None:
        consumer = ctx.consumer(list(STORED_STREAMS))
        conn = await asyncpg.connect(
            self.database_url, server_settings={"application_name": "tradebot-storage"}
        )
        try:
            writer = BatchWriter(conn, await ensure_schema(conn, (self.source,)))
            await consumer.setup()
            ctx.ready = True
            log.info("storing streams", extra={"streams": list(STORED_STREAMS)})
            # The next batch is read from Redis while the previous one is written to PostgreSQL,
            # so their round trips overlap; one write at a time keeps the connection's order.
            writing: asyncio.Task | None = None
            try:
                while not ctx.stopping.is_set():
                    ctx.progressed()
                    deliveries = await consumer.read()
                    if writing is not None:
                        await writing
                        writing = None
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
        await writer.write(d.message for d in deliveries)
        await consumer.ack(deliveries)
        self._trace(deliveries)
        ctx.counters["entries_stored"] += len(deliveries)
        ctx.handled_batch(len(deliveries))

    @staticmethod
    def _trace(deliveries: list[Delivery]) -> None:
        """End each entry's trace here: the span marks it durable."""
        if tracing_enabled():
            for delivery in deliveries:
                with traced(__name__, f"stored {delivery.message.kind}", delivery.traceparent):
                    pass
