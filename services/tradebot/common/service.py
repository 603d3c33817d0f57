"""The runtime every service runs in: settings, logging, telemetry, Redis,
heartbeats, probes, graceful shutdown and restart-with-backoff.

A service is an object with a `service_id` and an `async run(ctx)` that loops
until `ctx.stopping` is set. If `run` fails because Redis or PostgreSQL went
away it is restarted after a backoff; any other failure is logged and counted
in the service's error counter, then restarted too (never a hot crash loop).
"""

from __future__ import annotations

import asyncio
import logging
import signal
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

import uvloop
from opentelemetry.metrics import Histogram
from redis.asyncio import Redis

from tradebot.common import bus
from tradebot.common.backoff import Backoff
from tradebot.common.connections import TRANSIENT_ERRORS, connect_redis
from tradebot.common.heartbeat import HEARTBEAT_INTERVAL, Heartbeat
from tradebot.common.logs import configure_logging
from tradebot.common.metrics import register_service_metrics
from tradebot.common.probes import bind_socket, embedded_server, probe_app
from tradebot.common.settings import Settings
from tradebot.common.telemetry import setup_telemetry

log = logging.getLogger(__name__)
LIVENESS_STALL_SECONDS = 120.0


@dataclass
class ServiceContext:
    """What a running service shares with its runtime."""

    service_id: str
    settings: Settings
    redis: Redis
    heartbeat: Heartbeat
    stopping: asyncio.Event = field(default_factory=asyncio.Event)
    counters: Counter = field(default_factory=Counter)
    consumers: list[bus.Consumer] = field(default_factory=list)
    backlog: dict[str, dict[str, float]] = field(default_factory=dict)
    batch_sizes: Histogram | None = None
    ready: bool = False
    status: str = "starting"
    status_message: str | None = None
    last_progress: float = field(default_factory=time.monotonic)

    def progressed(self) -> None:
        """Call once per loop iteration: liveness fails if this stops happening."""
        self.last_progress = time.monotonic()

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
        return bus.Publisher(self.redis, self.settings.stream_maxlen)

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
            heartbeat=Heartbeat(redis, service.service_id),
        )
        self.probe_port: int | None = None
        self.ctx.batch_sizes = register_service_metrics(
            service.service_id, lambda: self.ctx.counters, lambda: self.ctx.backlog
        )

    def liveness(self) -> tuple[bool, dict]:
        stalled_for = time.monotonic() - self.ctx.last_progress
        return stalled_for < LIVENESS_STALL_SECONDS, {"stalled_for": round(stalled_for, 1)}

    def readiness(self) -> tuple[bool, dict]:
        return self.ctx.ready, {"status": self.ctx.status, "message": self.ctx.status_message}

    def stop(self) -> None:
        self.ctx.stopping.set()

    async def run(self) -> None:
        ctx = self.ctx
        tasks = [asyncio.create_task(self._heartbeat_loop(), name="heartbeat")]
        server = None
        if self.settings.probe_port >= 0:
            sock = bind_socket("0.0.0.0", self.settings.probe_port)
            self.probe_port = sock.getsockname()[1]
            server = embedded_server(probe_app(self.liveness, self.readiness))
            tasks.append(asyncio.create_task(server.serve(sockets=[sock]), name="probes"))
        log.info("service starting", extra={"probe_port": self.probe_port})
        try:
            await self._supervise()
        finally:
            ctx.ready = False
            ctx.status = "stopped"
            if server is not None:
                server.should_exit = True
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
            except TRANSIENT_ERRORS as error:
                ctx.ready, ctx.status = False, "reconnecting"
                ctx.status_message = f"{type(error).__name__}: {error}"
                log.warning("dependency unavailable; retrying", extra={"error": ctx.status_message})
            except Exception as error:
                ctx.ready, ctx.status = False, "error"
                ctx.status_message = f"{type(error).__name__}: {error}"
                log.exception("service failed; restarting")
                await ctx.count_error(ctx.status_message)
            if await ctx.sleep(backoff.next_delay()):
                return

    async def _measure_backlog(self) -> None:
        try:
            for consumer in self.ctx.consumers:
                self.ctx.backlog.update(await consumer.backlog())
        except TRANSIENT_ERRORS:
            pass  # reported as reconnecting by the service loop itself

    async def _heartbeat_loop(self) -> None:
        while True:
            await self._beat()
            await asyncio.sleep(HEARTBEAT_INTERVAL)

    async def _beat(self) -> None:
        await self._measure_backlog()
        counters = dict(self.ctx.counters)
        if self.probe_port:
            counters["probe_port"] = self.probe_port
        for stream, figures in self.ctx.backlog.items():
            counters[f"{stream}_lag_ms"] = figures["lag_ms"]
            counters[f"{stream}_pending"] = figures["pending"]
        try:
            await self.ctx.heartbeat.beat(self.ctx.status, counters, self.ctx.status_message)
        except TRANSIENT_ERRORS as error:
            log.debug("heartbeat not written", extra={"error": str(error)})


def run_service(make_service: Callable[[Settings], Service], settings: Settings) -> None:
    """Entry point of `tradebot service NAME`: run until SIGTERM or Ctrl-C."""
    service = make_service(settings)
    configure_logging(service.service_id, settings.log_level, settings.log_format)
    setup_telemetry(service.service_id)

    async def main() -> None:
        runtime = ServiceRuntime(service, settings)
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, runtime.stop)
        await runtime.run()

    uvloop.run(main())  # libuv's event loop: cheaper socket I/O on every hot path
