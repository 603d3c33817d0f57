"""The live provider service, the same for every provider: one feed, kept alive, without holes.

A provider package supplies a `Feed` (connect, authenticate, subscribe, deliver
events until the connection ends) and its REST history; this module does the
rest the same way for all of them:

* publishes ticks exactly like the synthetic service (TickPublisher), in small
  batches rather than one round trip per event;
* reconnects with backoff when the socket drops, and when the feed goes silent
  for PROVIDER_SILENCE_TIMEOUT seconds (a connected-but-mute socket);
* after a reconnect or a restart, fills each symbol's gap from the provider's
  REST trades, from that symbol's newest published trade to now, retrying until
  it succeeds. Trade ids already published are never published again, from
  either side, so the stream carries each trade once;
* a refusal (credentials, entitlement, symbol or connection limit) puts the
  service in the "error" state with a message naming the variable and the
  provider's answer, counted once, then retried only every PROVIDER_AUTH_RETRY
  seconds: no hot crash loop. A frame the feed cannot read is counted as an
  error and skipped.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import defaultdict
from collections.abc import Coroutine
from datetime import UTC, datetime, timedelta
from typing import Any

import redis.exceptions
from websockets.exceptions import ConnectionClosed

from tradebot.common import keys
from tradebot.common.backoff import Backoff
from tradebot.common.connections import TRANSIENT_ERRORS
from tradebot.common.models import PriceTick
from tradebot.common.service import ServiceContext
from tradebot.common.settings import Settings
from tradebot.common.symbols import configured_symbols, websocket_symbols
from tradebot.market_data.publishing import TickPublisher
from tradebot.providers.feed import Feed, FeedRejected
from tradebot.providers.history import HistorySource, credentials_problem, history_source
from tradebot.providers.http import ProviderAuthError, ProviderError
from tradebot.providers.ratelimit import Pacer
from tradebot.providers.registry import DataSource, load

log = logging.getLogger(__name__)
FLUSH_PERIOD = 0.05  # seconds between publishing rounds
GAP_MARGIN = timedelta(seconds=2)  # REST fill reaches this far past "now" (clock skew)
MAX_GAP = timedelta(days=1)  # a longer outage is the backfill's job
MAX_PENDING = 200_000  # ticks kept while Redis is away; the oldest go first (REST can refill them)
RESUME_EVERY = 1.0  # seconds between writes of the resume point
RECENT_TRADES = timedelta(minutes=2)  # how long published trade ids are remembered past a fill
GAP_FILL_ATTEMPTS = 3  # per request; a failed fill is retried as a whole, with backoff, until done
NETWORK_ERRORS: tuple[type[BaseException], ...] = (OSError, ConnectionClosed, TimeoutError)
FILL_RETRY_ERRORS: tuple[type[BaseException], ...] = (ProviderError, *NETWORK_ERRORS, *TRANSIENT_ERRORS)


def text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


async def cancel_and_wait(*tasks: asyncio.Task) -> None:
    """Cancel until done. In Python 3.11, asyncio.wait_for (which the SDKs' receive loops use)
    can swallow a cancellation that lands as a message arrives; one cancel() is not enough."""
    pending = {task for task in tasks if not task.done()}
    while pending:
        for task in pending:
            task.cancel()
        _, pending = await asyncio.wait(pending, timeout=1.0)


def outcome(task: asyncio.Task) -> BaseException | None:
    """The exception a finished task ended with (CancelledError when cancelled), or None."""
    if task.cancelled():
        return asyncio.CancelledError()
    return task.exception()


class TradeLedger:
    """The trades each symbol has taken for publishing, and its newest published trade (pure).

    The ids of recent trades are remembered so that neither a gap fill nor the
    live stream publishes a trade the other already did; a symbol's ids are kept
    back to the start of its pending gap (and always those at its newest time).
    """

    def __init__(self) -> None:
        self.newest: dict[str, datetime] = {}
        self._ids: dict[str, dict[str, datetime]] = defaultdict(dict)

    def admit(self, tick: PriceTick) -> bool:
        """True the first time a trade is offered (it is then remembered)."""
        seen = self._ids[tick.symbol]
        if tick.id in seen:
            return False
        seen[tick.id] = tick.time
        return True

    def published(self, ticks: list[PriceTick]) -> None:
        """Advance each symbol's newest trade: where its next gap starts (and its resume point)."""
        for tick in ticks:
            if tick.type == "trade" and (
                tick.symbol not in self.newest or tick.time > self.newest[tick.symbol]
            ):
                self.newest[tick.symbol] = tick.time

    def forget(self, keep_from: dict[str, datetime], now: datetime) -> None:
        """Drop ids older than each symbol's floor: its pending gap start, else RECENT_TRADES ago."""
        for symbol, seen in self._ids.items():
            floor = min(keep_from.get(symbol, now - RECENT_TRADES), self.newest.get(symbol, now))
            if any(moment < floor for moment in seen.values()):
                self._ids[symbol] = {i: moment for i, moment in seen.items() if moment >= floor}


class ProviderStreamService:
    """The market-data service of one provider source of the registry (`tradebot service <id>`)."""

    def __init__(self, settings: Settings, source: DataSource) -> None:
        if source.feed is None:
            raise ValueError(f"data source {source.name!r} has no live feed")
        self.source = source
        self.service_id = source.service_id
        self.symbols = websocket_symbols(configured_symbols(settings), settings.max_websocket_symbols)
        self.feed: Feed = load(source.feed)(settings)
        self.trades = TradeLedger()
        self._pending: list[PriceTick] = []
        self._unfilled: dict[str, datetime] = {}  # symbol -> start of a gap not yet filled
        self._gap_floor: datetime | None = None  # where a gap starts for a symbol without trades
        self._needs_fill = False
        self._last_message = time.monotonic()
        self._background: set[asyncio.Task] = set()
        self._resume_saved_at = 0.0
        self._session_had_data = False
        self._ctx: ServiceContext | None = None
        self._forgot_at = time.monotonic()

    async def run(self, ctx: ServiceContext) -> None:
        self._ctx = ctx
        publisher = TickPublisher.of(ctx)
        await self._load_resume_point(ctx)
        flusher = asyncio.create_task(self._flush_forever(ctx, publisher), name="flush")
        backoff = Backoff(initial=0.5, maximum=30.0)
        try:
            while not ctx.stopping.is_set():
                problem = credentials_problem(self.source.name, ctx.settings)
                if problem:
                    await ctx.refused(problem, source=self.source.name)
                    if await ctx.pause(ctx.settings.provider_auth_retry):
                        return
                    continue
                delay = await self._session(ctx, backoff)
                if delay and await ctx.pause(delay):
                    return
        finally:
            await cancel_and_wait(flusher, *self._background)
            with contextlib.suppress(*TRANSIENT_ERRORS):
                await self._flush(ctx, publisher)

    # ------------------------------------------------------------------------ resume point
    async def _load_resume_point(self, ctx: ServiceContext) -> None:
        """After a restart, each symbol's gap starts at the newest trade the last process published
        (or at the start of a gap it had not filled yet)."""
        key = keys.provider_resume_key(self.source.name)
        try:
            saved = await ctx.redis.hgetall(key)
        except redis.exceptions.ResponseError:  # an older release kept one time for all symbols
            raw = await ctx.redis.get(key)
            saved = dict.fromkeys(self.symbols, raw) if raw else {}
            await ctx.redis.delete(key)
        oldest_useful = datetime.now(UTC) - MAX_GAP
        for symbol, raw in saved.items():
            try:
                moment = datetime.fromisoformat(text(raw))
            except ValueError:
                continue
            if moment > oldest_useful:
                self._unfilled[text(symbol)] = moment
        if self._unfilled:
            self._gap_floor = min(self._unfilled.values())
            self._needs_fill = True

    async def _save_resume_point(self, ctx: ServiceContext) -> None:
        if time.monotonic() - self._resume_saved_at < RESUME_EVERY:
            return
        points = {**self.trades.newest, **self._unfilled}  # never past a gap still to fill
        if points:
            key = keys.provider_resume_key(self.source.name)
            pipe = ctx.redis.pipeline(transaction=True)
            pipe.hset(key, mapping={symbol: moment.isoformat() for symbol, moment in points.items()})
            pipe.expire(key, MAX_GAP)
            await pipe.execute()
        self._resume_saved_at = time.monotonic()

    # ------------------------------------------------------------------------ one connection
    async def _session(self, ctx: ServiceContext, backoff: Backoff) -> float:
        """One connection, from connect to its end; returns how long to wait before the next."""
        ctx.status, ctx.ready = "connecting", False
        ctx.status_message = f"connecting to {self.source.name}"
        self._last_message = time.monotonic()
        silences = ctx.counters["silences"]
        self._session_had_data = False
        session = asyncio.create_task(self.feed.stream(self.symbols, self), name="feed")
        watchdog = asyncio.create_task(self._watch(ctx, session), name="watchdog")
        stopping = asyncio.create_task(ctx.stopping.wait(), name="stopping")
        try:
            await asyncio.wait({session, stopping}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            await cancel_and_wait(session, watchdog, stopping)
        if ctx.stopping.is_set():
            return 0.0
        self._needs_fill = True
        error = outcome(session)
        if isinstance(error, FeedRejected):
            await ctx.refused(str(error), source=self.source.name)
            return ctx.settings.provider_auth_retry
        if ctx.counters["silences"] > silences:
            reason = f"no data for {ctx.settings.provider_silence_timeout:g}s"
        elif error is None or isinstance(error, asyncio.CancelledError):
            reason = "connection closed"
        else:
            reason = f"{type(error).__name__}: {error}"
            if not isinstance(error, NETWORK_ERRORS):  # not the network: the provider said something odd
                log.error("provider feed failed", exc_info=error, extra={"source": self.source.name})
                await ctx.count_error(f"{self.source.name} feed failed: {reason}")
        if self._session_had_data:  # the connection worked: start the next backoff from the bottom
            backoff.reset()
        ctx.counters["reconnects"] += 1
        ctx.status, ctx.ready, ctx.status_message = "reconnecting", False, reason
        log.warning("provider feed ended; reconnecting", extra={"source": self.source.name, "reason": reason})
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

    # ------------------------------------------------------------------------ FeedEvents
    def tick(self, tick: PriceTick) -> None:
        self._last_message = time.monotonic()
        self._session_had_data = True
        if tick.type == "trade" and not self.trades.admit(tick):
            return  # a gap fill published it already
        self._pending.append(tick)

    def live(self) -> None:
        """Subscribed: we are live; fill what the previous connection (or process) missed."""
        ctx = self._ctx
        assert ctx is not None
        ctx.status, ctx.ready, ctx.status_message = "running", True, None
        ctx.refusal = None
        now = datetime.now(UTC)
        if self._needs_fill:
            self._needs_fill = False
            floor = self._gap_floor
            starts = {s: self.trades.newest.get(s, self._unfilled.get(s, floor)) for s in self.symbols}
            gaps = {s: start for s, start in starts.items() if start is not None}
            for symbol, start in gaps.items():
                self._unfilled[symbol] = min(start, self._unfilled.get(symbol, start))
            if gaps:
                self._spawn(self._fill_gap(ctx, gaps, now + GAP_MARGIN))
        self._gap_floor = now  # a symbol without trades from here on has its next gap start here

    def malformed(self, reason: str) -> None:
        ctx = self._ctx
        assert ctx is not None
        ctx.counters["malformed_frames"] += 1
        if ctx.counters["malformed_frames"] <= 10 or ctx.counters["malformed_frames"] % 1000 == 0:
            log.error("provider frame skipped", extra={"source": self.source.name, "reason": reason})
        self._spawn(ctx.count_error(reason))

    def _spawn(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(work)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    # ------------------------------------------------------------------------ publishing
    async def _flush_forever(self, ctx: ServiceContext, publisher: TickPublisher) -> None:
        while True:
            await asyncio.sleep(FLUSH_PERIOD)
            try:
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
        self.trades.published(ticks)
        ctx.counters["messages"] += len(ticks)
        ctx.counters["ticks_published"] += len(ticks)
        await self._save_resume_point(ctx)
        if time.monotonic() - self._forgot_at >= RECENT_TRADES.total_seconds() / 4:
            self.trades.forget(self._unfilled, datetime.now(UTC))
            self._forgot_at = time.monotonic()

    # ------------------------------------------------------------------------ gap fills
    async def _fill_gap(self, ctx: ServiceContext, gaps: dict[str, datetime], end: datetime) -> None:
        """Publish each symbol's REST trades in [its start, end) that the stream lacks, until done."""
        settings = ctx.settings
        publisher = TickPublisher.of(ctx)
        backoff = Backoff(initial=1.0, maximum=60.0)
        remaining = dict(gaps)
        while remaining:
            history = history_source(
                self.source.name,
                settings,
                Pacer(settings.backfill_concurrent_requests, settings.rate_limit_delay),
                attempts=GAP_FILL_ATTEMPTS,
            )
            try:
                for symbol, start in list(remaining.items()):
                    await self._fill_symbol(ctx, history, publisher, symbol, max(start, end - MAX_GAP), end)
                    del remaining[symbol]
                    if self._unfilled.get(symbol) == gaps[symbol]:
                        del self._unfilled[symbol]
                    self._resume_saved_at = 0.0  # let the resume point move past the filled gap
            except ProviderAuthError as error:
                await ctx.refused(str(error), source=self.source.name)
                delay = settings.provider_auth_retry
            except FILL_RETRY_ERRORS as error:
                delay = backoff.next_delay()
                ctx.counters["gap_fill_failures"] += 1
                message = f"gap fill of {', '.join(remaining)} failed: {error}; retrying in {delay:.0f}s"
                log.error("gap fill failed", extra={"source": self.source.name, "error": message})
                await ctx.count_error(message)
            else:
                delay = 0.0
            finally:
                await history.http.aclose()
            if remaining and await ctx.pause(delay):
                return
        self.trades.forget(self._unfilled, datetime.now(UTC))
        ctx.counters["gaps_filled"] += 1
        log.info("gap filled", extra={"source": self.source.name, "symbols": len(gaps), "to": str(end)})

    async def _fill_symbol(
        self,
        ctx: ServiceContext,
        history: HistorySource,
        publisher: TickPublisher,
        symbol: str,
        start: datetime,
        end: datetime,
    ) -> None:
        async for rows in history.pages("trades", symbol, start, end):
            fresh = [row for row in rows if isinstance(row, PriceTick) and self.trades.admit(row)]
            await publisher.publish(fresh, latest=False)
            self.trades.published(fresh)
            ctx.counters["gap_ticks"] += len(fresh)
            ctx.counters["ticks_published"] += len(fresh)
