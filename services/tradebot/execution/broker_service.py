"""The execution service with a real broker behind it (EXECUTION_VENUE=alpaca).

Signals are decided as the paper broker decides them — the same filters, sizing,
cooldown and risk limits, against the account mirrored from the broker — and the
order goes to the broker with the signal's id as its client_order_id; the
stop-loss and take-profit ride along as the legs of a bracket order. The broker's
order stream reports fills, partial fills, cancels, expiries and rejections, which
`tradebot.execution.book` books into the same `orders`, `fills` and `positions`
streams the simulator writes. Ticks are read (and acknowledged) only to mark the
positions to the market.

Exactly once, across crashes: the order about to be submitted is written down
first (`execution:submitting`); a signal delivered again is submitted again with the
same client_order_id, which the broker refuses, and the order already placed is
fetched instead. Each step commits the book, the account, the records it
publishes, the executed signal ids and the acknowledgements in one transaction.

On start and after every reconnect of the stream (once the broker acknowledges
the subscription), the account is reconciled against the broker's REST API:
fills since the last one booked, the open orders, then positions and cash, which
the broker decides. What had to change is logged, counted, and shown in the
heartbeat's message.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Callable, Collection
from datetime import UTC, datetime, timedelta

from websockets.exceptions import WebSocketException

from tradebot.common import keys
from tradebot.common.backoff import Backoff
from tradebot.common.bus import Delivery
from tradebot.common.models import Fill, Order, OrderStatus, Position, PriceTick, Side, TradeSignal
from tradebot.common.service import ServiceContext
from tradebot.common.settings import Settings
from tradebot.common.telemetry import traced
from tradebot.execution.book import (
    Book,
    Booked,
    TrackedOrder,
    adopt,
    apply_update,
    book_fill,
    close,
    intended,
    reconcile_positions,
    track,
)
from tradebot.execution.paper import PaperBroker
from tradebot.execution.portfolio import PendingOrder, Portfolio, load_portfolio
from tradebot.execution.venue import (
    BrokerOrder,
    BrokerUpdate,
    OrderIntent,
    OrderRefused,
    Venue,
    VenueRejected,
)
from tradebot.market_data.provider_service import NETWORK_ERRORS, cancel_and_wait
from tradebot.providers.http import ProviderError, ProviderUnreachable

log = logging.getLogger(__name__)
PROCESSED_RETENTION_SECONDS = 7 * 24 * 3600
LISTEN_TIMEOUT = 30.0  # seconds the broker has to acknowledge the subscription before we reconnect
CATCH_UP_OVERLAP = timedelta(seconds=5)  # the fill catch-up starts this far before the last fill booked
END_EVENTS = {"filled": "fill", "canceled": "canceled", "expired": "expired", "rejected": "rejected"}
SESSION_ERRORS: tuple[type[BaseException], ...] = (ProviderError, WebSocketException, *NETWORK_ERRORS)


def price_of(value: float) -> float:
    """A price Alpaca accepts: whole cents from $1, four decimals below."""
    return round(value, 2 if value >= 1 else 4)


class BrokerExecutionService:
    service_id = "execution"

    def __init__(self, settings: Settings, venue: Venue) -> None:
        self.settings = settings
        self.venue = venue
        self.broker = PaperBroker.from_settings(settings)
        self.tick_streams = keys.tick_streams(settings.tick_shards)
        self.updates: deque[BrokerUpdate] = deque()
        self.listening = False
        self._background: set[asyncio.Task] = set()
        self.submitting: dict[str, TrackedOrder] = {}

    # ------------------------------------------------------------------------ lifecycle
    async def run(self, ctx: ServiceContext) -> None:
        self.signals = ctx.consumer([keys.SIGNALS], count=500)
        self.signals.block_ms = 1
        self.ticks = ctx.consumer(self.tick_streams)
        self.ticks.block_ms = 100
        self.publisher = ctx.publisher()
        backoff = Backoff(initial=0.5, maximum=30.0)
        while not ctx.stopping.is_set():
            problem = self.settings.venue_credentials_problem()
            delay = self.settings.provider_auth_retry
            if problem:
                await ctx.refused(problem, venue=self.venue.name)
            else:
                try:
                    if await self._session(ctx):
                        backoff.reset()
                    delay = backoff.next_delay()
                except VenueRejected as error:
                    await ctx.refused(str(error), venue=self.venue.name)
                except SESSION_ERRORS as error:
                    delay = backoff.next_delay()
                    reason = f"{type(error).__name__}: {error}"
                    ctx.status, ctx.ready, ctx.status_message = "reconnecting", False, reason
                    log.warning("broker unavailable; retrying", extra={"reason": reason, "retry_in": delay})
                    if isinstance(error, ProviderError) and not isinstance(error, ProviderUnreachable):
                        await ctx.count_error(f"{self.venue.name}: {reason}")
            if await ctx.pause(delay):
                return

    async def _session(self, ctx: ServiceContext) -> bool:
        """One connection of the broker's order stream; True when it had reconciled (it worked)."""
        ctx.status, ctx.ready = "connecting", False
        ctx.status_message = f"connecting to the {self.venue.description}"
        await self.signals.setup()  # (again: what a failed session left unacknowledged comes first)
        await self.ticks.setup()
        account = await self.venue.account()
        if account.blocked:
            raise VenueRejected(f"the {self.venue.description} is blocked from trading ({account.status})")
        self.listening, reconciled = False, False
        stream = asyncio.create_task(
            self.venue.stream(self.updates.append, self._on_listening, self._malformed(ctx)), name="orders"
        )
        deadline = time.monotonic() + LISTEN_TIMEOUT
        try:
            while not ctx.stopping.is_set():
                ctx.progressed()
                if not self.listening and time.monotonic() > deadline:
                    raise TimeoutError(f"{self.venue.name} never acknowledged the listen")
                if stream.done():
                    error = stream.exception()
                    if error is not None:
                        raise error
                    raise ConnectionError(f"{self.venue.name} order stream closed")
                if self.listening and not reconciled:
                    await self._reconcile(ctx)
                    reconciled, ctx.refusal = True, None
                    ctx.status, ctx.ready = "running", True
                if reconciled:
                    await self._step(ctx)
                else:
                    await asyncio.sleep(0.05)
            return reconciled
        except BaseException:
            if reconciled:
                ctx.counters["reconnects"] += 1
            raise
        finally:
            await cancel_and_wait(stream)

    def _on_listening(self) -> None:
        self.listening = True

    def _malformed(self, ctx: ServiceContext) -> Callable[[str], None]:
        """What the venue calls for an event it had to skip: counted as an error, the stream goes on."""

        def report(reason: str) -> None:
            ctx.counters["malformed_updates"] += 1
            log.error("broker update skipped", extra={"reason": reason})
            task = asyncio.get_running_loop().create_task(ctx.count_error(reason))
            self._background.add(task)
            task.add_done_callback(self._background.discard)

        return report

    # ------------------------------------------------------------------------ state
    async def _load(self, ctx: ServiceContext) -> tuple[Portfolio, Book]:
        raw = await ctx.redis.get(keys.BROKER_BOOK)
        book = Book.model_validate_json(raw) if raw else Book(last_fill=datetime.now(UTC))
        self.submitting = {
            (cid.decode() if isinstance(cid, bytes) else cid): TrackedOrder.model_validate_json(meant)
            for cid, meant in (await ctx.redis.hgetall(keys.BROKER_SUBMITTING)).items()
        }
        return await load_portfolio(ctx.redis, self.settings.starting_cash), book

    async def _commit(
        self,
        ctx: ServiceContext,
        portfolio: Portfolio,
        book: Book,
        booked: Booked,
        signals: Collection[Delivery] = (),
        ticks: Collection[Delivery] = (),
        executed: Collection[str] = (),
    ) -> None:
        """Everything a step did, in one transaction."""
        streams = {Order.kind: keys.ORDERS, Fill.kind: keys.FILLS, Position.kind: keys.POSITIONS}
        async with ctx.redis.pipeline(transaction=True) as pipe:
            for message, tp in booked.messages:
                self.publisher.add_to(pipe, streams[message.kind], message, tp)
            pipe.set(keys.PORTFOLIO, portfolio.model_dump_json())
            pipe.set(keys.BROKER_BOOK, book.model_dump_json())
            if executed:
                pipe.zadd(keys.PROCESSED_SIGNALS, dict.fromkeys(executed, time.time()))
                pipe.hdel(keys.BROKER_SUBMITTING, *executed)
            if signals:
                pipe.xack(keys.SIGNALS, self.signals.group, *(d.entry_id for d in signals))
            for stream in {d.stream for d in ticks}:
                pipe.xack(stream, self.ticks.group, *(d.entry_id for d in ticks if d.stream == stream))
            await pipe.execute()
        ctx.counters.update(booked.counts)
        ctx.counters["open_orders"] = len(book.orders)
        for name, value in self.venue.stats.items():
            ctx.counters[f"{self.venue.name}_{name}"] = value

    # ------------------------------------------------------------------------ reconciliation
    async def _reconcile(self, ctx: ServiceContext) -> None:
        """Fills missed, orders ended, positions and cash: the broker is the truth."""
        venue = self.venue
        portfolio, book = await self._load(ctx)
        now = datetime.now(UTC)
        booked = Booked()
        since = (book.last_fill or now) - CATCH_UP_OVERLAP
        for fill in await venue.fills_since(since):
            if not book.knows(fill.order_id):
                order = await venue.order(fill.order_id)
                adopt(book, order, now, self.submitting.get(order.client_order_id))
            found = book_fill(book, portfolio, fill)
            found.counts["fills_recovered"] += found.counts["fills"]
            booked.extend(found)
        open_orders = await venue.open_orders()
        for order in open_orders:
            if not book.knows(order.id):
                adopt(book, order, now, self.submitting.get(order.client_order_id))
                booked.counts["orders_adopted"] += 1
        still_open = {o.id for o in open_orders} | {leg.id for o in open_orders for leg in o.legs}
        for broker_id in [i for i in book.orders if i not in still_open]:
            ended = await venue.order(broker_id)
            if not ended.is_open and ended.status in END_EVENTS:
                booked.extend(close(book, portfolio, broker_id, END_EVENTS[ended.status], now, ended.status))
        account = await venue.account()
        positions = await venue.positions()
        corrected, changes = reconcile_positions(portfolio, account, positions, now)
        booked.extend(corrected)
        book.last_reconciled, book.differences = now, changes
        await self._commit(ctx, portfolio, book, booked)
        ctx.counters["reconciliations"] += 1
        summary = "; ".join(changes) if changes else "matches the broker"
        ctx.status_message = f"{venue.description}; reconciled at {now:%H:%M:%S} UTC: {summary}"
        if changes:
            log.warning("reconciled with the broker", extra={"venue": venue.name, "changes": changes})
        else:
            log.info(
                "reconciled with the broker", extra={"venue": venue.name, "open_orders": len(book.orders)}
            )

    # ------------------------------------------------------------------------ trading
    async def _step(self, ctx: ServiceContext) -> None:
        signals = await self.signals.read_all()
        ticks = await self.ticks.read()
        updates = [self.updates.popleft() for _ in range(len(self.updates))]
        if not (signals or ticks or updates):
            return
        portfolio, book = await self._load(ctx)
        booked = Booked()
        for update in updates:
            booked.extend(apply_update(book, portfolio, update, self.submitting))
        portfolio.mark(
            {t.symbol: t.price for d in ticks if isinstance(t := d.message, PriceTick) and t.type == "trade"}
        )
        messages: list[TradeSignal] = [d.message for d in signals]  # type: ignore[misc]
        done = await ctx.redis.zmscore(keys.PROCESSED_SIGNALS, [s.id for s in messages]) if messages else []
        executed: set[str] = set()
        for delivery, signal, seen in zip(signals, messages, done, strict=True):
            if seen is not None or signal.id in executed:
                booked.counts["duplicate_signals"] += 1
                continue
            executed.add(signal.id)
            with traced(__name__, "execute signal", delivery.traceparent, symbol=signal.symbol) as tp:
                booked.extend(await self._execute(ctx, portfolio, book, signal, tp))
        await self._commit(ctx, portfolio, book, booked, signals, ticks, executed)
        ctx.handled_batch(len(signals) + len(ticks) + len(updates))
        if executed:
            await ctx.redis.zremrangebyscore(
                keys.PROCESSED_SIGNALS, "-inf", time.time() - PROCESSED_RETENTION_SECONDS
            )

    def _rejected(self, portfolio: Portfolio, signal: TradeSignal, reason: str, tp: str | None) -> Booked:
        done = Booked()
        portfolio.orders_rejected += 1
        done.counts["orders_rejected"] += 1
        done.add(PaperBroker.order(signal.id, signal.strategy, signal.symbol, signal.side, 0.0, signal.price,
                                   datetime.now(UTC), reason, OrderStatus.REJECTED), tp)  # fmt: skip
        log.info("order rejected", extra={"signal": signal.id, "reason": reason})
        return done

    async def _execute(
        self, ctx: ServiceContext, portfolio: Portfolio, book: Book, signal: TradeSignal, tp: str | None
    ) -> Booked:
        """One signal: decided as the paper broker would, then placed at the broker."""
        prior = self.submitting.get(signal.id)
        if prior is not None:  # decided (and perhaps placed) before a crash: the same order again
            return await self._submit(ctx, portfolio, book, signal, prior, tp)
        refusal = self.broker.refusal(signal)
        if refusal is not None:
            return self._rejected(portfolio, signal, refusal, tp)
        entries = [o for o in book.open_for(signal.symbol) if not o.leg and o.key != signal.id]
        if entries:
            reason = f"an order for {signal.symbol} is already open at {self.venue.name} ({entries[0].key})"
            return self._rejected(portfolio, signal, reason, tp)
        price = (await keys.read_latest_prices(ctx.redis, [signal.symbol])).get(signal.symbol, signal.price)
        pending = PendingOrder.of(signal, tp)
        quantity, rejection = self.broker.size(
            portfolio, pending, self.broker.costs.fill_price(signal.side, price), datetime.now(UTC)
        )
        if rejection is not None:
            return self._rejected(portfolio, signal, rejection, tp)
        meant = intended(pending, self._intent(signal, quantity, price), signal.price)
        self.submitting[signal.id] = meant
        await ctx.redis.hset(keys.BROKER_SUBMITTING, signal.id, meant.model_dump_json())  # before sending
        return await self._submit(ctx, portfolio, book, signal, meant, tp)

    async def _submit(
        self, ctx: ServiceContext, portfolio: Portfolio, book: Book, signal: TradeSignal,
        meant: TrackedOrder, tp: str | None,
    ) -> Booked:  # fmt: skip
        """Place the decided order; Alpaca itself refuses a second one with the same client_order_id."""
        done = Booked()
        if meant.side is Side.SELL:
            done.extend(await self._cancel_legs(portfolio, book, meant.symbol))
        try:
            order = await self.venue.submit(meant.intent())
        except OrderRefused as error:
            done.extend(self._rejected(portfolio, signal, str(error), tp))
            return done
        track(book, order, meant)
        done.counts["orders_submitted"] += 1
        log.info(
            "order submitted", extra={"signal": signal.id, "order": order.id, "quantity": meant.quantity}
        )
        return done

    def _intent(self, signal: TradeSignal, quantity: float, price: float) -> OrderIntent:
        """Market or limit (ALPACA_ORDER_TYPE); a buy carries its stop-loss and take-profit as a bracket."""
        settings, stop, target, limit = self.settings, None, None, None
        if settings.alpaca_order_type == "limit":
            direction = 1 if signal.side is Side.BUY else -1
            limit = price_of(price * (1 + direction * settings.alpaca_limit_offset_bps / 10_000))
        if signal.side is Side.BUY:
            distance = self.broker.exits.stop_distance(price, signal.atr)
            if distance is not None and price - distance > 0:
                stop = min(price_of(price - distance), price_of(price - 0.01))
            if settings.take_profit_pct > 0:
                target = max(price_of(price * (1 + settings.take_profit_pct / 100)), price_of(price + 0.01))
        return OrderIntent(signal.id, signal.symbol, signal.side, quantity, settings.alpaca_order_type,
                           limit, stop, target)  # fmt: skip

    async def _cancel_legs(self, portfolio: Portfolio, book: Book, symbol: str) -> Booked:
        """A sell closes the position itself: the bracket legs holding its shares go first."""
        done = Booked()
        for leg in [o for o in book.open_for(symbol) if o.leg]:
            ended: BrokerOrder = await self.venue.cancel(leg.broker_id)
            event = END_EVENTS.get(ended.status)
            if event is not None and event != "fill":
                done.extend(close(book, portfolio, leg.broker_id, event, datetime.now(UTC)))
        return done


class AlpacaExecutionService(BrokerExecutionService):
    """Execution at Alpaca (paper by default), through alpaca-py."""

    def __init__(self, settings: Settings) -> None:
        from tradebot.providers.alpaca.trading import AlpacaTrading

        super().__init__(settings, AlpacaTrading(settings))
