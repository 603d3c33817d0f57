"""The dashboard's web app: the page and its assets, the live WebSocket, and a path to the API.

The browser only ever talks to this server (one port to forward in a cluster):
`/ws` for live frames, `/api/...` for history, which is passed on to the API with the
stack's token. Everything but the login page, the probes and the static assets needs a
session (or the token; reads are open with AUTH=read-open), see tradebot.api.auth.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

import httpx
from fastapi import Depends, FastAPI, Request, WebSocket, WebSocketDisconnect
from fastapi.responses import FileResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from redis.asyncio import Redis

from tradebot.api.auth import ACTOR_HEADER, Access, require_read, require_write, websocket_refusal
from tradebot.common.heartbeat import discover_service_ids, reset_errors
from tradebot.common.probes import ProbeCheck, probe_routes
from tradebot.common.settings import Settings, reveal
from tradebot.dashboard import login
from tradebot.dashboard.fanout import Hub, serve_client
from tradebot.providers.registry import DATA_SOURCES

STATIC = Path(__file__).parent / "static"
SERVICE_ID = re.compile(r"^[a-z][a-z0-9_]{0,62}$")
FORWARDED_HEADERS = ("authorization", "content-type", "cookie")


@dataclass
class DashboardState:
    settings: Settings
    redis: Redis
    hub: Hub
    api: httpx.AsyncClient


def create_app(state: DashboardState, live: ProbeCheck, ready: ProbeCheck) -> FastAPI:
    app = FastAPI(title="TradeBot dashboard", docs_url=None, redoc_url=None, openapi_url=None)
    settings = state.settings
    app.state.access = Access.of(settings)
    app.include_router(login.router)
    readers = [Depends(require_read)]

    @app.get("/")
    async def index(request: Request) -> Response:
        """The page, for a reader; otherwise the login page (or a login by `?token=`)."""
        if (instead := login.entry(request)) is not None:
            return instead
        return FileResponse(STATIC / "index.html", headers={"Cache-Control": "no-cache"})

    @app.get("/config", dependencies=readers)
    async def config(request: Request) -> dict:
        return {
            "source": settings.data_source,
            "market_data_service": DATA_SOURCES[settings.data_source].service_id,
            "authenticated": app.state.access.authenticated(request),
        }

    @app.websocket("/ws")
    async def live_feed(websocket: WebSocket) -> None:
        if (refusal := websocket_refusal(websocket)) is not None:
            await websocket.close(code=1008, reason=refusal)  # before accepting: an HTTP 403
            return
        ends = app.state.access.session_ends(websocket)
        await websocket.accept()
        sending = asyncio.create_task(serve_client(state.hub, state.hub.snapshot(), websocket.send_text))
        try:
            # A session's feed ends with the session: the page then finds out and logs in again.
            async with asyncio.timeout_at(None if ends is None else _loop_time_of(ends)):
                with contextlib.suppress(WebSocketDisconnect):
                    while not sending.done():
                        await websocket.receive_text()  # nothing is expected; notices the browser leaving
        except TimeoutError:
            sending.cancel()
            with contextlib.suppress(Exception):
                await websocket.close(code=1008, reason="the session has ended")
        sending.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await sending

    @app.post("/services/{service_id}/reset-errors", status_code=204, dependencies=[Depends(require_write)])
    async def reset(service_id: str) -> Response:
        if not SERVICE_ID.match(service_id) or service_id not in await discover_service_ids(state.redis):
            return JSONResponse({"detail": f"unknown service {service_id!r}"}, status_code=404)
        await reset_errors(state.redis, service_id)
        return Response(status_code=204)

    @app.get("/backtests")
    async def backtests_page(request: Request) -> Response:
        """The backtests page, for a reader; otherwise the login page."""
        if (instead := login.entry(request)) is not None:
            return instead
        return FileResponse(STATIC / "backtests.html", headers={"Cache-Control": "no-cache"})

    async def to_api(path: str, request: Request, headers: dict[str, str]) -> Response:
        """A request passed on to the API (history, controls, backtests), so the browser needs
        one origin."""
        try:
            answer = await state.api.request(
                request.method, f"/{path}", params=request.query_params, headers=headers,
                content=await request.body() if request.method == "POST" else None,
            )  # fmt: skip
        except httpx.HTTPError as error:
            detail = f"the API at {settings.api_url} is unreachable: {type(error).__name__}"
            return JSONResponse({"detail": detail}, status_code=502)
        return Response(answer.content, answer.status_code, media_type=answer.headers.get("content-type"))

    @app.get("/api/{path:path}", dependencies=readers)
    async def read_api(path: str, request: Request) -> Response:
        """A read goes with the caller's Authorization and session: the API decides."""
        return await to_api(
            path, request, {k: v for k, v in request.headers.items() if k in FORWARDED_HEADERS}
        )

    @app.post("/api/{path:path}")
    async def write_api(path: str, request: Request, who: Annotated[str, Depends(require_write)]) -> Response:
        """A change is checked here (token or session, and this page's Origin), then made with
        the stack's token, the dashboard answering for the person (who the audit names)."""
        headers = {
            "content-type": request.headers.get("content-type", "application/json"),
            "authorization": f"Bearer {reveal(settings.auth_token)}",
            ACTOR_HEADER: who,
        }
        return await to_api(path, request, headers)

    app.router.routes.extend(probe_routes(live, ready))
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    return app


def _loop_time_of(moment: float) -> float:
    """A wall-clock time (time.time()) as the event loop's clock, for asyncio.timeout_at."""
    return asyncio.get_running_loop().time() + (moment - time.time())
