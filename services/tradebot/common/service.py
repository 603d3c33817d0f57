"""The runtime every service runs in: settings, logging, telemetry, Redis,
heartbeats, probes, graceful shutdown and restart-with-backoff.

A service is an object with a `service_id` and an `async run(ctx)` that loops
until `ctx.stopping` is set. If `run` fails because Redis or PostgreSQL went
away it is restarted after a backoff, which starts again from its shortest
delay once the service has recovered; any other failure is logged and counted
in the service's error counter, then restarted too (never a hot crash loop). A
setting no retry can fix (`ConfigurationError`: a malformed URL, a port in use)
stops the service with a message naming it.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import signal
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import uvloop
from opentelemetry.metrics import Histogram
from redis.asyncio import Redis

from tradebot.common import bus
from tradebot.common.backoff import Backoff
from tradebot.common.connections import TRANSIENT_ERRORS, ConfigurationError, connect_redis
from tradebot.common.heartbeat import HEARTBEAT_INTERVAL, Heartbeat
from tradebot.common.logs import configure_logging
from tradebot.common.metrics import register_service_metrics
from tradebot.common.probes import bind_socket, embedded_server, probe_app
from tradebot.common.redaction import Redactor
from tradebot.common.settings import Settings
from tradebot.common.telemetry import setup_telemetry

log = logging.getLogger(__name__)
REDIS_MEMORY = "redis_memory"  # the alarm's key
REDIS_MEMORY_ALARM = 0.8  # share of Redis's maxmemory from which every service alarms
LIVENESS_STALL_SECONDS = 120.0
RECOVERED_AFTER_SECONDS = 1.0  # ready this long before a failure: the next outage backs off afresh
GC_THRESHOLDS = (50_000, 20, 100)  # see settle_heap


@dataclass
class ServiceContext:
    """What a running service shares with its runtime."""

    service_id: str
    settings: Settings
    redis: Redis
    heartbeat: Heartbeat
    stopping: asyncio.Event = field(default_factory=asyncio.Event)
    counters: Counter[str] = field(default_factory=Counter)
    consumers: list[bus.Consumer] = field(default_factory=list)
    publishers: list[bus.Publisher] = field(default_factory=list)
    backlog: dict[str, dict[str, float]] = field(default_factory=dict)
    alarms: dict[str, str] = field(default_factory=dict)  # stream -> why it is over its limit
    batch_sizes: Histogram | None = None
    status: str = "starting"
    status_message: str | None = None
    last_progress: float = field(default_factory=time.monotonic)
    ready_since: float | None = None
    refusal: str | None = None  # what a provider or broker last refused us with, until accepted

    @property
    def ready(self) -> bool:
        return self.ready_since is not None

    @ready.setter
    def ready(self, value: bool) -> None:
        if not value:
            self.ready_since = None
        elif self.ready_since is None:
            self.ready_since = time.monotonic()

    def progressed(self) -> None:
        """Call once per loop iteration: liveness fails if this stops happening."""
        self.last_progress = time.monotonic()

    async def refused(self, message: str, **extra: str) -> None:
        """A provider or broker refuses us (keys, limits): the error state with its words,
        counted and logged once per distinct refusal (it keeps refusing while we retry)."""
        self.status, self.ready, self.status_message = "error", False, message
        if message != self.refusal:
            self.refusal = message
            log.error("refused by the provider", extra={"reason": message, **extra})
            await self.count_error(message)

    async def count_error(self, reason: str) -> None:
        self.counters["errors"] += 1
        try:
            await self.heartbeat.count_error(reason)
        except TRANSIENT_ERRORS:
            log.warning("could not count an error in Redis", extra={"reason": reason})

    def consumer(self, streams: list[str], count: int | None = None) -> bus.Consumer:
        """This service's consumer group on `streams`; undecodable entries count as errors."""

        async def count_dead_letter(stream: str, entry_id: bytes, reason: str) -> None:
            await self.count_error(f"dead-lettered {stream} entry {entry_id.decode()}: {reason}")

        consumer = bus.Consumer(
            self.redis,
            group=self.service_id,
            name=bus.consumer_name(self.service_id),
            streams=streams,
            count=count or self.settings.batch_size,
            claim_idle_ms=int(self.settings.claim_idle_seconds * 1000),
            on_dead_letter=count_dead_letter,
        )
        self.consumers.append(consumer)
        return consumer

    def handled_batch(self, size: int) -> None:
        """Record one batch of stream entries handled (for the batch-size metric)."""
        self.counters["batches"] += 1
        if self.batch_sizes is not None:
            self.batch_sizes.record(size)

    def publisher(self) -> bus.Publisher:
        """A publisher whose streams the runtime keeps trimmed, alarming when one overflows."""
        publisher = bus.Publisher(self.redis, self.settings.stream_maxlen, on_overflow=self.stream_overflow)
        self.publishers.append(publisher)
        return publisher

    async def stream_overflow(self, stream: str, length: int, group: str | None) -> None:
        """A stream this service writes is over STREAM_MAXLEN (or, group None, back under it):
        an error in the heartbeat, once per episode, with the length in the counters."""
        if group is None:
            self.alarms.pop(stream, None)
            self.counters.pop(f"{stream}_overflow", None)
            return
        self.counters[f"{stream}_overflow"] = length
        if stream not in self.alarms:
            limit = self.settings.stream_maxlen
            self.alarms[stream] = (
                f"stream {stream} holds {length:,} entries, over STREAM_MAXLEN={limit:,}: group"
                f" {group!r} has not acknowledged them, so nothing is trimmed until it does"
            )
            await self.count_error(self.alarms[stream])

    async def pause(self, seconds: float) -> bool:
        """Wait however long (True when stopping), staying live for the liveness probe meanwhile."""
        deadline = time.monotonic() + seconds
        while (left := deadline - time.monotonic()) > 0:
            self.progressed()
            if await self.sleep(min(left, 10.0)):
                return True
        return self.stopping.is_set()

    async def redis_memory(self, used: int, limit: int) -> None:
        """Redis's memory against its maxmemory (0: none): an alarm, and an error once, from
        REDIS_MEMORY_ALARM of it on. With noeviction (as on Kubernetes) Redis refuses every
        write at the limit: this says so while there is still time to act."""
        share = used / limit if limit else 0.0
        if share < REDIS_MEMORY_ALARM:
            self.alarms.pop(REDIS_MEMORY, None)
            self.counters.pop("redis_memory_pct", None)
            return
        self.counters["redis_memory_pct"] = round(100 * share)
        if REDIS_MEMORY not in self.alarms:
            self.alarms[REDIS_MEMORY] = (
                f"Redis uses {share:.0%} of its maxmemory ({limit / 2**20:,.0f} MiB): at 100% it refuses"
                " writes; give it more memory (spec.redis.resources.limits.memory) or let consumers catch up"
            )
            log.warning("Redis memory is running out", extra={"used": used, "maxmemory": limit})
            await self.count_error(self.alarms[REDIS_MEMORY])

    async def sleep(self, seconds: float) -> bool:
        """Sleep unless asked to stop; True when stopping."""
        try:
            await asyncio.wait_for(self.stopping.wait(), timeout=seconds)
        except TimeoutError:
            return False
        return True


class Service(Protocol):
    service_id: str

    async def run(self, ctx: ServiceContext) -> None: ...


class ServiceRuntime:
    """Runs one service until SIGTERM/SIGINT, keeping its heartbeat and probes current."""

    def __init__(self, service: Service, settings: Settings, redis: Redis | None = None) -> None:
        self.service = service
        self.settings = settings
        redis = redis or connect_redis(settings.redis_url)
        self.ctx = ServiceContext(
            service_id=service.service_id,
            settings=settings,
            redis=redis,
            heartbeat=Heartbeat(redis, service.service_id, redact=Redactor(settings.secret_values()).redact),
        )
        self.probe_port: int | None = None
        self._closing = asyncio.Event()
        self.ctx.batch_sizes = register_service_metrics(
            service.service_id, lambda: self.ctx.counters, lambda: self.ctx.backlog
        )

    def liveness(self) -> tuple[bool, dict[str, Any]]:
        stalled_for = time.monotonic() - self.ctx.last_progress
        return stalled_for < LIVENESS_STALL_SECONDS, {"stalled_for": round(stalled_for, 1)}

    def readiness(self) -> tuple[bool, dict[str, Any]]:
        return self.ctx.ready, {"status": self.ctx.status, "message": self.ctx.status_message}

    def stop(self) -> None:
        self.ctx.stopping.set()

    async def run(self) -> None:
        ctx = self.ctx
        settings = self.settings
        sock = bind_socket(settings.bind_host, settings.probe_port) if settings.probe_port >= 0 else None
        tasks = [asyncio.create_task(self._heartbeat_loop(), name="heartbeat")]
        server = None
        if sock is not None:
            self.probe_port = sock.getsockname()[1]
            server = embedded_server(probe_app(self.liveness, self.readiness))
            tasks.append(asyncio.create_task(server.serve(sockets=[sock]), name="probes"))
        log.info("service starting", extra={"probe_port": self.probe_port})
        try:
            await self._supervise()
        except ConfigurationError as error:
            ctx.status, ctx.status_message = "error", str(error)
            log.error("stopping: a setting is wrong", extra={"error": str(error)})
            await ctx.count_error(str(error))
            raise
        finally:
            ctx.ready = False
            if ctx.status != "error":
                ctx.status = "stopped"
            if server is not None:
                server.should_exit = True
            self._closing.set()
            tasks[0].cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await self._beat()
            await ctx.redis.aclose()
            log.info("service stopped")

    async def _supervise(self) -> None:
        ctx = self.ctx
        backoff = Backoff()
        while not ctx.stopping.is_set():
            try:
                ctx.status, ctx.status_message = "running", None
                await self.service.run(ctx)
                return
            except ConfigurationError:
                raise
            except TRANSIENT_ERRORS as error:
                self._recovered(backoff)
                ctx.ready, ctx.status = False, "reconnecting"
                ctx.status_message = f"{type(error).__name__}: {error}"
                log.warning("dependency unavailable; retrying", extra={"error": ctx.status_message})
            except Exception as error:
                self._recovered(backoff)
                ctx.ready, ctx.status = False, "error"
                ctx.status_message = f"{type(error).__name__}: {error}"
                log.exception("service failed; restarting")
                await ctx.count_error(ctx.status_message)
            delay = backoff.next_delay()
            log.info("restarting after a backoff", extra={"retry_in": round(delay, 3)})
            if await ctx.sleep(delay):
                return

    def _recovered(self, backoff: Backoff) -> None:
        """A run that had been ready a while ended: this is a new outage, so back off afresh."""
        since = self.ctx.ready_since
        if since is not None and time.monotonic() - since >= RECOVERED_AFTER_SECONDS:
            backoff.reset()

    async def _trim_streams(self) -> None:
        """Streams written through a pipeline of the service's own (add_to) are trimmed here."""
        try:
            for publisher in self.ctx.publishers:
                await publisher.trim()
        except TRANSIENT_ERRORS:
            pass  # reported as reconnecting by the service loop itself

    async def _measure_backlog(self) -> None:
        try:
            for consumer in self.ctx.consumers:
                self.ctx.backlog.update(await consumer.backlog())
        except TRANSIENT_ERRORS:
            pass  # reported as reconnecting by the service loop itself

    async def _heartbeat_loop(self) -> None:
        """Beat, and trim the service's streams in between, until the runtime closes.

        It ends on `_closing` as well as on cancellation: a cancellation that lands inside a
        Redis call can be swallowed by the client, which left the loop sleeping forever.
        """
        trims = max(1, round(HEARTBEAT_INTERVAL / bus.TRIM_INTERVAL))
        while not self._closing.is_set():
            await self._beat()
            for _ in range(trims):
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._closing.wait(), HEARTBEAT_INTERVAL / trims)
                    return
                await self._trim_streams()

    async def _beat(self) -> None:
        await self._measure_backlog()
        with contextlib.suppress(*TRANSIENT_ERRORS):
            memory = await self.ctx.redis.info("memory")
            await self.ctx.redis_memory(int(memory.get("used_memory", 0)), int(memory.get("maxmemory", 0)))
        counters: dict[str, float] = dict(self.ctx.counters)
        if self.probe_port:
            counters["probe_port"] = self.probe_port
        for stream, figures in self.ctx.backlog.items():
            counters[f"{stream}_lag_ms"] = figures["lag_ms"]
            counters[f"{stream}_pending"] = figures["pending"]
        message = "; ".join(filter(None, [self.ctx.status_message, *self.ctx.alarms.values()])) or None
        try:
            await self.ctx.heartbeat.beat(self.ctx.status, counters, message)
        except TRANSIENT_ERRORS as error:
            log.debug("heartbeat not written", extra={"error": str(error)})


def run_service(make_service: Callable[[Settings], Service], settings: Settings) -> None:
    """Entry point of `tradebot service NAME`: run until SIGTERM or Ctrl-C."""
    service = make_service(settings)
    configure_logging(service.service_id, settings.log_level, settings.log_format, settings.secret_values())
    setup_telemetry(service.service_id)

    async def main() -> None:
        runtime = ServiceRuntime(service, settings)
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, runtime.stop)
        settle_heap()
        await runtime.run()

    uvloop.run(main())  # libuv's event loop: cheaper socket I/O on every hot path; a
    # ConfigurationError comes out of here (a ValueError: the CLI prints it and exits 2)


def settle_heap() -> None:
    """Keep the garbage collector off the hot path.

    Everything allocated at start-up (modules, clients) is frozen out of its sight, and a
    young collection waits for 50,000 new objects instead of 700: the models are untracked
    (msgspec, gc=False), so what remains are short-lived containers freed by reference
    counting, and collecting them every 700 cost storage a third of its CPU (issue 18).
    """
    gc.collect()
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)
