"""The paper execution service: signals and ticks in, orders, fills and positions out.

It reads two things through its group `execution`: the `signals` stream and every
tick shard. Signals queue market orders; ticks fill them (at the first trade after
the signal's tick) and trigger exits (stop-loss, take-profit, trailing stop), all
decided by the pure `PaperBroker`, the same one a backtest runs.

Ticks are processed only up to what the strategy has covered
(`strategy:progress[n]`, written with the signals of those ticks), so every
signal is known before the ticks after it, and live trading decides exactly as a
backtest of the same ticks. Should the strategy fall behind by more than
WATERMARK_WAIT_SECONDS, exits are checked anyway (protection first).

Each batch is one optimistic Redis transaction (WATCH/MULTI): the orders, fills
and positions, the portfolio with its queued orders, the executed signal ids and
the acknowledgements of signals and ticks. So a signal delivered twice never
trades twice, and a crash never leaves a fill without its portfolio update.
Operator controls (`controls` stream, tradebot.execution.controls) join the same
transaction, decided before the batch's signals.
"""

from __future__ import annotations

import logging
import time
from collections import Counter, deque
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime

import redis.exceptions
from redis.asyncio.client import Pipeline

from tradebot.common import keys
from tradebot.common.bus import Delivery
from tradebot.common.models import PriceTick, TradeSignal
from tradebot.common.service import ServiceContext
from tradebot.common.settings import Settings
from tradebot.common.telemetry import traced
from tradebot.execution.controls import decide_controls
from tradebot.execution.paper import Execution, PaperBroker
from tradebot.execution.portfolio import load_portfolio
from tradebot.strategy.shards import entry_key

log = logging.getLogger(__name__)
PROCESSED_RETENTION_SECONDS = 7 * 24 * 3600
MAX_BUFFERED_TICKS = 200_000
"""Ticks read ahead of the strategy's progress, held (unacknowledged) until it covers them."""


class ExecutionService:
    service_id = "execution"

    def __init__(self, settings: Settings) -> None:
        self.broker = PaperBroker.from_settings(settings)
        self.starting_cash = settings.starting_cash
        self.tick_streams = keys.tick_streams(settings.tick_shards)
        self.wait_ms = int(settings.watermark_wait_seconds * 1000)
        self.settings = settings

    async def run(self, ctx: ServiceContext) -> None:
        self.signals = ctx.consumer([keys.SIGNALS], count=500)
        self.signals.block_ms = 1  # never wait for signals: the tick read below does the waiting
        self.ticks = ctx.consumer(self.tick_streams)
        self.ticks.block_ms = 250
        self.controls = ctx.consumer([keys.CONTROLS], count=50)
        self.controls.block_ms = 1
        self.publisher = ctx.publisher()
        await self.signals.setup()
        await self.ticks.setup()
        await self.controls.setup()
        self.buffers: dict[str, deque[Delivery]] = {stream: deque() for stream in self.tick_streams}
        ctx.ready = True
        next_trim = 0.0
        while not ctx.stopping.is_set():
            ctx.progressed()
            progress = await ctx.redis.hgetall(keys.STRATEGY_PROGRESS)
            controls = await self.controls.read()
            signals = await self.signals.read_all()  # after the progress: none it covers is missed
            if sum(map(len, self.buffers.values())) < MAX_BUFFERED_TICKS:
                for delivery in await self.ticks.read():
                    self.buffers[delivery.stream].append(delivery)
            ticks = self._covered_ticks(progress, ctx)
            if signals or ticks or controls:
                ctx.counters.update(await self.handle(signals, ticks, controls))
                ctx.handled_batch(len(signals) + len(ticks) + len(controls))
            if time.monotonic() >= next_trim:
                cutoff = time.time() - PROCESSED_RETENTION_SECONDS
                await ctx.redis.zremrangebyscore(keys.PROCESSED_SIGNALS, "-inf", cutoff)
                next_trim = time.monotonic() + 3600

    def _covered_ticks(
        self, progress: Mapping[bytes | str, bytes | str], ctx: ServiceContext
    ) -> list[Delivery]:
        """Buffered ticks the strategy has covered (or that waited longer than WATERMARK_WAIT_SECONDS)."""
        overdue = (int(time.time() * 1000) - self.wait_ms, 0)
        ready: list[Delivery] = []
        for shard, stream in enumerate(self.tick_streams):
            buffer = self.buffers[stream]
            covered = progress.get(str(shard).encode()) or progress.get(str(shard))
            bound = max(entry_key(covered) if covered else (0, 0), overdue)
            while buffer and entry_key(buffer[0].entry_id) <= bound:
                delivery = buffer.popleft()
                if covered is None or entry_key(delivery.entry_id) > entry_key(covered):
                    ctx.counters["ticks_uncovered"] += 1
                ready.append(delivery)
        return ready

    async def handle(
        self, signals: list[Delivery], ticks: list[Delivery], controls: Sequence[Delivery] = ()
    ) -> Counter:
        """Decide a batch and commit it in one optimistic transaction; returns what happened."""
        async with self.signals.redis.pipeline(transaction=True) as pipe:
            while True:
                try:
                    return await self._execute_batch(pipe, signals, ticks, controls)
                except redis.exceptions.WatchError:
                    continue  # the portfolio changed under us (a reset, a second replica): decide again

    async def _execute_batch(
        self, pipe: Pipeline, signals: list[Delivery], ticks: list[Delivery], controls: Sequence[Delivery]
    ) -> Counter:
        await pipe.watch(keys.PORTFOLIO, keys.PROCESSED_SIGNALS)
        messages: list[TradeSignal] = [d.message for d in signals]  # type: ignore[misc]
        already_done = (
            await pipe.zmscore(keys.PROCESSED_SIGNALS, [s.id for s in messages]) if messages else []
        )
        decided = await decide_controls(
            pipe,
            await load_portfolio(pipe, self.starting_cash),
            controls,
            self.starting_cash,
            datetime.now(UTC),
        )
        portfolio, outcomes = decided.portfolio, decided.outcomes
        accepted: set[str] = set()
        results: list[tuple[Execution, str | None]] = []
        for delivery, signal, done in zip(signals, messages, already_done, strict=True):
            if done is not None or signal.id in accepted:
                outcomes["duplicate_signals"] += 1
                log.info("duplicate signal ignored", extra={"signal": signal.id})
                continue
            accepted.add(signal.id)
            with traced(__name__, "execute signal", delivery.traceparent, symbol=signal.symbol) as tp:
                refused = self.broker.accept(portfolio, signal, tp)
            outcomes["signals_accepted"] += 1
            if refused is not None:
                results.append((refused, tp))
        for delivery in ticks:
            tick = delivery.message
            if isinstance(tick, PriceTick) and self.broker.wants(portfolio, tick.symbol):
                for execution in self.broker.on_tick(portfolio, tick):
                    # a fill joins its signal's trace; an exit belongs to the tick that triggered it
                    parent = execution.traceparent or delivery.traceparent
                    with traced(__name__, "fill order", parent, symbol=tick.symbol) as tp:
                        results.append((execution, tp))
        outcomes["ticks_checked"] += len(ticks)
        pipe.multi()
        decided.commit(pipe, self.publisher, self.controls.group)
        for execution, tp in results:
            self._publish(pipe, execution, tp, outcomes)
        pipe.set(keys.PORTFOLIO, portfolio.model_dump_json())
        if accepted:
            pipe.zadd(keys.PROCESSED_SIGNALS, dict.fromkeys(accepted, time.time()))
        if signals:
            pipe.xack(keys.SIGNALS, self.signals.group, *(d.entry_id for d in signals))
        for stream in {d.stream for d in ticks}:
            pipe.xack(stream, self.ticks.group, *(d.entry_id for d in ticks if d.stream == stream))
        await pipe.execute()
        return outcomes

    def _publish(self, pipe: Pipeline, execution: Execution, tp: str | None, outcomes: Counter) -> None:
        order = execution.order
        self.publisher.add_to(pipe, keys.ORDERS, order, tp)
        if execution.fill is None or execution.position is None:
            outcomes["orders_rejected"] += 1
            log.info("order rejected", extra={"signal": order.signal_id, "reason": order.reason})
            return
        self.publisher.add_to(pipe, keys.FILLS, execution.fill, tp)
        self.publisher.add_to(pipe, keys.POSITIONS, execution.position, tp)
        outcomes["orders_filled"] += 1
        if order.signal_id.startswith("exit:"):
            outcomes["exits"] += 1
            log.info("position exited", extra={"symbol": order.symbol, "reason": order.reason})
