"""The synthetic market-data service: ticks at a steady, configurable rate."""

from __future__ import annotations

import asyncio
import logging
import time
from datetime import UTC, datetime

from tradebot.common import keys
from tradebot.common.service import ServiceContext
from tradebot.common.settings import Settings
from tradebot.common.symbols import configured_symbols
from tradebot.market_data.publishing import TickPublisher
from tradebot.market_data.synthetic import SyntheticMarket

log = logging.getLogger(__name__)
PUBLISH_PERIOD = 0.02  # seconds between publishing rounds at high rates
MAX_BATCH = 5_000


class SyntheticMarketDataService:
    service_id = "market_data"

    def __init__(self, settings: Settings, seed: int | None = None) -> None:
        self.symbols = configured_symbols(settings)
        self.rate = settings.ticks_per_second or len(self.symbols) / settings.tick_interval
        self.seed = seed
        self.market: SyntheticMarket | None = None

    async def run(self, ctx: ServiceContext) -> None:
        publisher = TickPublisher.of(ctx)
        if self.market is None:  # first start: carry on from where the market was (prices:latest)
            last = await keys.read_latest_ticks(ctx.redis, self.symbols)
            self.market = SyntheticMarket(
                self.symbols, len(self.symbols) / self.rate, seed=self.seed, start=last
            )
            log.info("continuing from the latest prices", extra={"symbols": len(last)})
        ctx.ready = True
        log.info("publishing synthetic ticks", extra={"symbols": len(self.symbols), "rate": self.rate})
        period = max(PUBLISH_PERIOD, min(1.0, 1.0 / self.rate))
        started, sent = time.monotonic(), 0
        while not ctx.stopping.is_set():
            ctx.progressed()
            due = int((time.monotonic() - started) * self.rate) - sent
            if publisher.overflowing:  # a consumer group is STREAM_MAXLEN behind: wait for it
                ctx.counters["throttled_rounds"] += 1
                await ctx.sleep(period)
                await publisher.trim()
                started, sent = time.monotonic(), 0
                continue
            if due <= 0:  # caught up: wait for the next ticks to fall due
                await asyncio.sleep(period)
                continue
            if due > MAX_BATCH * 4:  # fell far behind (e.g. Redis was down): skip, don't burst
                started, sent = time.monotonic(), 0
                continue
            count = min(due, MAX_BATCH)
            ticks = self.market.next_ticks(count, datetime.now(UTC))
            sent += await publisher.publish(ticks)
            ctx.counters["ticks_published"] += count
