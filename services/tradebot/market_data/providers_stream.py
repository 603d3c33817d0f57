"""The live provider service, shared by Alpaca and Polygon: one feed, kept alive, without holes.

A provider module supplies a `Feed` (connect, authenticate, subscribe, deliver
ticks until the connection ends) and its REST history; this module does the
rest the same way for both:

* publishes ticks exactly like the synthetic service (TickPublisher), in small
  batches rather than one round trip per event;
* reconnects with backoff when the socket drops, and when the feed goes silent
  for PROVIDER_SILENCE_TIMEOUT seconds (a connected-but-mute socket);
* after a reconnect, fills the gap from the provider's REST trades, from the
  newest event seen before the drop to now. Tick ids come from the provider's
  trade ids, so the overlap with the live stream is stored once;
* missing or rejected credentials put the service in the "error" state with a
  message naming the variable and the provider's answer, counted once, then
  retried only every PROVIDER_AUTH_RETRY seconds: no hot crash loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Protocol

from tradebot.backfill.http import ProviderAuthError, ProviderError
from tradebot.backfill.ratelimit import Pacer
from tradebot.backfill.sources import HistorySource
from tradebot.common import bus, keys
from tradebot.common.backoff import Backoff
from tradebot.common.connections import TRANSIENT_ERRORS
from tradebot.common.models import PriceTick
from tradebot.common.service import ServiceContext
from tradebot.common.settings import Settings
from tradebot.common.symbols import configured_symbols, websocket_symbols
from tradebot.market_data.publishing import TickPublisher

log = logging.getLogger(__name__)
FLUSH_PERIOD = 0.05  # seconds between publishing rounds
GAP_MARGIN = timedelta(seconds=2)  # REST fill reaches this far past "now" (clock skew)
MAX_GAP = timedelta(days=1)  # a longer outage is the backfill's job
MAX_PENDING = 200_000  # ticks kept while Redis is away; the oldest go first (REST can refill them)
RESUME_EVERY = 1.0  # seconds between writes of the resume point


Sink = Callable[[PriceTick], None]
Live = Callable[[], None]


async def cancel_and_wait(*tasks: asyncio.Task) -> None:
    """Cancel until done. In Python 3.11, asyncio.wait_for (which the SDKs' receive loops use)
    can swallow a cancellation that lands as a message arrives; one cancel() is not enough."""
    pending = {task for task in tasks if not task.done()}
    while pending:
        for task in pending:
            task.cancel()
        _, pending = await asyncio.wait(pending, timeout=1.0)


def outcome(task: asyncio.Task) -> object:
    """A finished task's result, or the exception it ended with (CancelledError when cancelled)."""
    if task.cancelled():
        return asyncio.CancelledError()
    return task.exception() or task.result()


class FeedRejected(Exception):
    """The provider refused us (credentials, entitlement, connection limit): retrying soon won't help."""


class Feed(Protocol):
    source: str

    def credentials_problem(self) -> str | None:
        """Which variable is missing, before we even try."""

    async def stream(self, symbols: list[str], sink: Sink, live: Live) -> None:
        """Connect, authenticate, subscribe (then call `live`); deliver ticks to `sink` until the end."""

    def history(self, pacer: Pacer) -> HistorySource:
        """The provider's REST history, for gap fills."""


class ProviderStreamService:
    """A market-data service over one provider `Feed`; subclasses set `service_id` and `make_feed`."""

    service_id: str

    def __init__(self, settings: Settings) -> None:
        self.symbols = websocket_symbols(configured_symbols(settings), settings.max_websocket_symbols)
        self.feed = self.make_feed(settings)
        self._pending: list[PriceTick] = []
        self._last_message = time.monotonic()
        self._newest_event: datetime | None = None
        self._gap_from: datetime | None = None
        self._rejection: str | None = None
        self._gap_fills: set[asyncio.Task] = set()
        self._resume_saved_at = 0.0
        self._session_had_data = False

    def make_feed(self, settings: Settings) -> Feed:
        raise NotImplementedError

    async def run(self, ctx: ServiceContext) -> None:
        publisher = TickPublisher(ctx.redis, ctx.settings.stream_maxlen)
        await self._load_resume_point(ctx)
        flusher = asyncio.create_task(self._flush_forever(ctx, publisher), name="flush")
        backoff = Backoff(initial=0.5, maximum=30.0)
        try:
            while not ctx.stopping.is_set():
                problem = self.feed.credentials_problem()
                if problem:
                    await self._rejected(ctx, problem)
                    if await self._wait(ctx, ctx.settings.provider_auth_retry):
                        return
                    continue
                delay = await self._session(ctx, backoff)
                if delay and await self._wait(ctx, delay):
                    return
        finally:
            await cancel_and_wait(flusher, *self._gap_fills)
            with contextlib.suppress(*TRANSIENT_ERRORS):
                await self._flush(ctx, publisher)

    async def _wait(self, ctx: ServiceContext, seconds: float) -> bool:
        """Sleep (True when stopping), staying live for the liveness probe however long the wait."""
        deadline = time.monotonic() + seconds
        while (left := deadline - time.monotonic()) > 0:
            ctx.progressed()
            if await ctx.sleep(min(left, 10.0)):
                return True
        return ctx.stopping.is_set()

    async def _load_resume_point(self, ctx: ServiceContext) -> None:
        """After a restart, the gap to fill starts at the newest trade the last process published."""
        raw = await ctx.redis.get(keys.provider_resume_key(self.feed.source))
        if raw and self._newest_event is None:
            try:
                saved = datetime.fromisoformat(raw.decode())
            except ValueError:
                return
            if saved > datetime.now(UTC) - MAX_GAP:
                self._newest_event = saved

    async def _save_resume_point(self, ctx: ServiceContext) -> None:
        if self._newest_event is not None and time.monotonic() - self._resume_saved_at >= RESUME_EVERY:
            await ctx.redis.set(
                keys.provider_resume_key(self.feed.source), self._newest_event.isoformat(), ex=MAX_GAP
            )
            self._resume_saved_at = time.monotonic()

    async def _session(self, ctx: ServiceContext, backoff: Backoff) -> float:
        """One connection, from connect to its end; returns how long to wait before the next."""
        ctx.status, ctx.ready = "connecting", False
        self._gap_from = self._newest_event
        self._last_message = time.monotonic()
        silences = ctx.counters["silences"]
        self._session_had_data = False
        feed = self.feed.stream(self.symbols, self._receive, lambda: self._connected(ctx))
        session = asyncio.create_task(feed, name="feed")
        watchdog = asyncio.create_task(self._watch(ctx, session), name="watchdog")
        stopping = asyncio.create_task(ctx.stopping.wait(), name="stopping")
        try:
            await asyncio.wait({session, stopping}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            await cancel_and_wait(session, watchdog, stopping)
        if ctx.stopping.is_set():
            return 0.0
        error = outcome(session)
        if isinstance(error, FeedRejected):
            await self._rejected(ctx, str(error))
            return ctx.settings.provider_auth_retry
        if ctx.counters["silences"] > silences:
            reason = f"no data for {ctx.settings.provider_silence_timeout:g}s"
        elif isinstance(error, BaseException) and not isinstance(error, asyncio.CancelledError):
            reason = f"{type(error).__name__}: {error}"
        else:
            reason = "connection closed"
        if self._session_had_data:  # the connection worked: start the next backoff from the bottom
            backoff.reset()
        ctx.counters["reconnects"] += 1
        ctx.status, ctx.ready, ctx.status_message = "reconnecting", False, reason
        log.warning("provider feed ended; reconnecting", extra={"source": self.feed.source, "reason": reason})
        return backoff.next_delay()

    async def _watch(self, ctx: ServiceContext, session: asyncio.Task) -> bool:
        """Cancel a session whose feed has been silent too long; True when it did."""
        timeout = ctx.settings.provider_silence_timeout
        while not session.done():
            ctx.progressed()
            silent = time.monotonic() - self._last_message
            if silent >= timeout:
                log.warning("provider feed silent; reconnecting", extra={"silent_for": round(silent, 1)})
                ctx.counters["silences"] += 1
                await cancel_and_wait(session)
                return True
            await asyncio.sleep(min(1.0, timeout - silent))
        return False

    def _receive(self, tick: PriceTick) -> None:
        self._last_message = time.monotonic()
        self._session_had_data = True
        self._pending.append(tick)
        if tick.type == "trade" and (self._newest_event is None or tick.time > self._newest_event):
            self._newest_event = tick.time

    async def _flush_forever(self, ctx: ServiceContext, publisher: TickPublisher) -> None:
        while True:
            await asyncio.sleep(FLUSH_PERIOD)
            try:
                if self._pending and not ctx.ready:
                    self._connected(ctx)
                await self._flush(ctx, publisher)
            except Exception as error:  # never let publishing die silently
                log.exception("publishing ticks failed")
                await ctx.count_error(f"publishing ticks failed: {error}")

    async def _flush(self, ctx: ServiceContext, publisher: TickPublisher) -> None:
        ticks, self._pending = self._pending, []
        if not ticks:
            return
        try:
            await publisher.publish(ticks)
        except TRANSIENT_ERRORS as error:  # Redis away: keep the ticks for the next round
            self._pending[:0] = ticks
            del self._pending[:-MAX_PENDING]
            log.warning("ticks not published yet", extra={"error": str(error), "pending": len(self._pending)})
            return
        ctx.counters["messages"] += len(ticks)
        ctx.counters["ticks_published"] += len(ticks)
        await self._save_resume_point(ctx)

    def _connected(self, ctx: ServiceContext) -> None:
        """Subscribed (or, failing a signal, first data): we are live; fill the previous session's gap."""
        ctx.status, ctx.ready, ctx.status_message = "running", True, None
        self._rejection = None
        gap_from, self._gap_from = self._gap_from, None
        if gap_from is not None:
            task = asyncio.create_task(self._fill_gap(ctx, gap_from, datetime.now(UTC) + GAP_MARGIN))
            self._gap_fills.add(task)
            task.add_done_callback(self._gap_fills.discard)

    async def _fill_gap(self, ctx: ServiceContext, start: datetime, end: datetime) -> None:
        start = max(start, end - MAX_GAP)
        settings = ctx.settings
        history = self.feed.history(Pacer(settings.backfill_concurrent_requests, settings.rate_limit_delay))
        publisher = bus.Publisher(ctx.redis, settings.stream_maxlen)
        try:
            for symbol in self.symbols:
                async for rows in history.pages("trades", symbol, start, end):
                    ticks = [row for row in rows if isinstance(row, PriceTick)]
                    await publisher.publish(keys.TICKS, ((tick, None) for tick in ticks))
                    ctx.counters["gap_ticks"] += len(ticks)
            ctx.counters["gaps_filled"] += 1
            log.info("gap filled", extra={"source": self.feed.source, "from": str(start), "to": str(end)})
        except ProviderAuthError as error:
            await self._rejected(ctx, str(error))
        except (ProviderError, OSError) as error:
            ctx.counters["gap_fill_failures"] += 1
            await ctx.count_error(f"gap fill failed: {error}")
            log.error("gap fill failed", extra={"error": str(error)})
        finally:
            await history.http.aclose()

    async def _rejected(self, ctx: ServiceContext, message: str) -> None:
        """Error state with the provider's words; counted once per distinct rejection."""
        ctx.status, ctx.ready, ctx.status_message = "error", False, message
        if message != self._rejection:
            self._rejection = message
            log.error("provider refused the feed", extra={"source": self.feed.source, "reason": message})
            await ctx.count_error(message)
