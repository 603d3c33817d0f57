"""`tradebot service api`: the history API served inside the common service runtime."""

from __future__ import annotations

import asyncio
import gc
import logging

from fastapi import FastAPI

from tradebot.api.app import create_app
from tradebot.api.auth import Access
from tradebot.api.deps import ApiState
from tradebot.api.sources import SourceCatalog
from tradebot.api.store import HistoryStore
from tradebot.common.connections import connect_postgres
from tradebot.common.probes import bind_socket, embedded_server
from tradebot.common.service import ServiceContext
from tradebot.common.settings import Settings

log = logging.getLogger(__name__)


class ApiService:
    service_id = "api"

    def __init__(self, settings: Settings) -> None:
        Access.of(settings)  # no token, no API: refused at start, naming AUTH_TOKEN
        self.host = settings.bind_host  # BIND_HOST: this machine only, unless told (containers)
        self.requested_port = settings.api_port
        self.app: FastAPI | None = None  # the app being served (its routes are what tests enumerate)
        self.port: int | None = None  # the bound port, known once serving (API_PORT=0 picks one)

    async def run(self, ctx: ServiceContext) -> None:
        pool = await connect_postgres(ctx.settings.database_url, min_size=1, max_size=8)
        try:
            catalog = SourceCatalog(pool)
            await catalog.refresh()
            state = ApiState(ctx.settings, catalog, HistoryStore(pool, catalog), ctx.redis)
            app = self.app = create_app(state, live=lambda: (True, {}), ready=lambda: (ctx.ready, {}))
            sock = bind_socket(self.host, self.requested_port)
            self.port = sock.getsockname()[1]
            server = embedded_server(app)
            serving = asyncio.create_task(server.serve(sockets=[sock]))
            await _until_started(server, serving)
            settle_heap()
            warming = asyncio.create_task(state.ledger.performance())  # pair every stored fill once, now
            ctx.ready = True
            log.info("serving the API", extra={"port": self.port})
            while not ctx.stopping.is_set() and not serving.done():
                ctx.progressed()
                await ctx.sleep(1.0)
            server.should_exit = True
            warming.cancel()
            await serving
            state.backtests.close()
        finally:
            ctx.ready = False
            await pool.close()


def settle_heap() -> None:
    """Move everything allocated at start-up out of the garbage collector's sight.

    The modules, app and pool are long-lived; without this every full collection walks
    them again, which showed up as 30-50 ms pauses in the p99 of large answers (bench/api.py).
    """
    gc.collect()
    gc.freeze()


async def _until_started(server, serving: asyncio.Task) -> None:
    """Wait for uvicorn to listen (or to fail, which re-raises its error)."""
    while not server.started:
        if serving.done():
            await serving
            raise RuntimeError("the HTTP server stopped before it started")
        await asyncio.sleep(0.02)
