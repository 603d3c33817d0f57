"""The FastAPI application: routers, error mapping and probes, over a given pool and Redis."""

from __future__ import annotations

import re

from fastapi import Depends, FastAPI, Request
from fastapi.exception_handlers import http_exception_handler
from fastapi.responses import JSONResponse, Response
from fastapi_offline import FastAPIOffline
from starlette.exceptions import HTTPException as StarletteHTTPException

from tradebot import __version__
from tradebot.api.auth import Access, require_read
from tradebot.api.deps import AUTH_PROBLEMS, ApiState
from tradebot.api.ranges import RequestProblem
from tradebot.api.routes import backtests, controls, market, performance, strategies, system, trading
from tradebot.api.sources import UnknownName
from tradebot.common.connections import TRANSIENT_ERRORS
from tradebot.common.probes import ProbeCheck, probe_routes

DESCRIPTION = """
History and live state of TradeBot: ticks and OHLCV bars per data source, latest
prices, signals, paper orders, fills, positions and P&L, and every service's health.

Unknown sources and symbols are 404s that name them; malformed parameters are 422s
that say what is accepted, exactly as this document declares them; a filter matching
nothing is an empty list. Times before 1970 or from 2200 on mean unbounded and a
backwards range is empty; raw ticks come in pages, bars at most 10,000 per answer.

Every route needs the stack's token (`Authorization: Bearer <AUTH_TOKEN>`) or a dashboard
session, reads only unless the stack opens them (AUTH=read-open); a change from another
site (its Origin) is refused.
"""


async def unknown_name(_: Request, error: Exception) -> JSONResponse:
    return JSONResponse({"detail": str(error)}, status_code=404)


async def request_problem(_: Request, error: Exception) -> JSONResponse:
    """The same 422 body FastAPI gives for invalid parameters, so the document has one shape."""
    assert isinstance(error, RequestProblem)
    detail = [{"loc": list(error.loc), "msg": str(error), "type": "value_error"}]
    return JSONResponse({"detail": detail}, status_code=422)


async def method_not_allowed(request: Request, error: Exception) -> Response:
    """405 with every method the OpenAPI document gives the path in `Allow` (Starlette lists only
    the first route's, and /backtests has a GET and a POST route); other errors as FastAPI does."""
    assert isinstance(error, StarletteHTTPException)
    if error.status_code != 405:
        return await http_exception_handler(request, error)
    methods = sorted(
        method.upper()
        for template, operations in request.app.openapi()["paths"].items()
        if re.fullmatch(re.sub(r"\{[^}]+\}", "[^/]+", template), request.url.path)
        for method in operations
    )
    return JSONResponse({"detail": error.detail}, status_code=405, headers={"Allow": ", ".join(methods)})


async def unavailable(_: Request, error: Exception) -> JSONResponse:
    detail = f"a backing store is unavailable: {type(error).__name__}"
    return JSONResponse({"detail": detail}, status_code=503)


def create_app(state: ApiState, live: ProbeCheck, ready: ProbeCheck) -> FastAPI:
    # /docs (Swagger UI) and /redoc with their scripts and styles from the fastapi-offline package.
    app = FastAPIOffline(title="TradeBot API", version=__version__, description=DESCRIPTION)
    app.state.api = state
    app.state.access = Access.of(state.settings)
    routers = (market, trading, performance, strategies, backtests, controls, system)
    for router in (module.router for module in routers):
        app.include_router(router, dependencies=[Depends(require_read)], responses=AUTH_PROBLEMS)
    app.router.routes.extend(probe_routes(live, ready))
    app.add_exception_handler(StarletteHTTPException, method_not_allowed)
    app.add_exception_handler(UnknownName, unknown_name)
    app.add_exception_handler(RequestProblem, request_problem)
    for error in TRANSIENT_ERRORS:
        app.add_exception_handler(error, unavailable)
    return app
