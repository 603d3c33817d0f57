"""`tradebot service dashboard`: the live dashboard inside the common service runtime."""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime

import httpx
from fastapi import FastAPI

from tradebot.api.auth import Access
from tradebot.common.probes import EmbeddedServer, bind_socket, embedded_server
from tradebot.common.service import ServiceContext
from tradebot.common.settings import Settings
from tradebot.dashboard.app import DashboardState, create_app
from tradebot.dashboard.fanout import Hub
from tradebot.dashboard.feed import StreamFeed, live_account, live_health, live_streams, snapshot
from tradebot.notify.messages import DailySummary, ErrorWatch, describe
from tradebot.notify.webhook import WebhookNotifier

log = logging.getLogger(__name__)
STATE_PERIOD = 1.0  # seconds between health/account refreshes


class DashboardService:
    service_id = "dashboard"

    def __init__(self, settings: Settings) -> None:
        Access.of(settings)  # no token, no dashboard: refused at start, naming AUTH_TOKEN
        self.host = settings.bind_host  # BIND_HOST: this machine only, unless told (containers)
        self.requested_port = settings.dashboard_port
        self.app: FastAPI | None = None  # the app being served (its routes are what tests enumerate)
        self.port: int | None = None  # the bound port, known once serving (DASHBOARD_PORT=0 picks one)
        self.hub = Hub()
        self.notifier = (
            WebhookNotifier(settings.notify_webhook_url, settings.notify_max_per_minute)
            if settings.notify_webhook_url
            else None
        )
        self.errors, self.summary = ErrorWatch(), DailySummary()

    async def run(self, ctx: ServiceContext) -> None:
        feed = StreamFeed(ctx.redis, live_streams(ctx.settings.tick_shards))
        await feed.start()  # before the snapshot, so nothing written in between is missed
        self.hub.seed(await snapshot(ctx.redis, ctx.settings.data_source, ctx.settings.starting_cash))
        async with httpx.AsyncClient(
            base_url=ctx.settings.api_url, timeout=10.0, headers=api_headers(ctx.settings)
        ) as api:
            state = DashboardState(ctx.settings, ctx.redis, self.hub, api)
            app = self.app = create_app(state, live=lambda: (True, {}), ready=lambda: (ctx.ready, {}))
            sock = bind_socket(self.host, self.requested_port)
            self.port = sock.getsockname()[1]
            server = websocket_server(app)
            tasks = [
                asyncio.create_task(server.serve(sockets=[sock]), name="http"),
                asyncio.create_task(self.hub.run(ctx.stopping), name="fan-out"),
                asyncio.create_task(self._follow_streams(ctx, feed), name="streams"),
                asyncio.create_task(self._follow_state(ctx), name="state"),
            ]
            if self.notifier is not None:
                tasks.append(asyncio.create_task(self.notifier.run(), name="notifications"))
            try:
                while not server.started:
                    await _raise_if_any_failed(tasks)
                    await asyncio.sleep(0.02)
                ctx.ready = True
                log.info("serving the dashboard", extra={"port": self.port})
                while not ctx.stopping.is_set():
                    ctx.progressed()
                    ctx.counters["browsers"] = len(self.hub.mailboxes)
                    ctx.counters["frames_sent"] = self.hub.frames_sent
                    if self.notifier is not None:
                        ctx.counters.update(self.notifier.counters)
                        self.notifier.counters.clear()
                    await _raise_if_any_failed(tasks)
                    await ctx.sleep(1.0)
            finally:
                ctx.ready = False
                server.should_exit = True
                for task in tasks[1:]:
                    task.cancel()
                await asyncio.gather(*tasks, return_exceptions=True)

    async def _follow_streams(self, ctx: ServiceContext, feed: StreamFeed) -> None:
        while not ctx.stopping.is_set():
            for message in await feed.read():
                self.hub.add(message)
                if self.notifier is not None:
                    self.summary.count(message)
                    text = describe(message)
                    if text is not None:
                        self.notifier.offer(text)

    async def _follow_state(self, ctx: ServiceContext) -> None:
        settings = ctx.settings
        while not ctx.stopping.is_set():
            health = await live_health(ctx.redis, settings.data_source)
            account = await live_account(ctx.redis, settings.starting_cash)
            self.hub.set_health(health)
            self.hub.set_account(account)
            if self.notifier is not None:
                for text in self.errors.news(health):
                    self.notifier.offer(text)
                summary = self.summary.due(datetime.now(UTC), account)
                if summary is not None:
                    self.notifier.offer(summary)
            await ctx.sleep(STATE_PERIOD)


def api_headers(settings: Settings) -> dict[str, str]:
    """The dashboard's calls to the API carry the stack's token (checked at start by Access.of)."""
    token = Access.of(settings).token.get_secret_value()
    return {"Authorization": f"Bearer {token}"}


def websocket_server(app) -> EmbeddedServer:
    """Without per-message compression: each frame is serialised once for every browser, and
    compressing it again per connection would cost more CPU than everything else (bench/dashboard.py).
    """
    return embedded_server(app, ws_per_message_deflate=False)


async def _raise_if_any_failed(tasks: list[asyncio.Task]) -> None:
    """A helper task that ended (Redis gone, port taken) ends the service run, to be restarted."""
    for task in tasks:
        if task.done():
            await task
            raise RuntimeError(f"dashboard task {task.get_name()!r} stopped")
