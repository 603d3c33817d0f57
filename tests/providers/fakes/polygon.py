"""A local Polygon: the stocks WebSocket (JSON `ev` events) and REST aggregates/trades.

WebSocket, as documented: on connect `[{"ev":"status","status":"connected"}]`;
`{"action":"auth","params":KEY}` answered by `auth_success` or `auth_failed`;
`{"action":"subscribe","params":"T.AAPL,Q.AAPL,AM.AAPL"}` answered by one
`success` status per channel; events `T`, `Q`, `AM` with millisecond `t`/`s`/`e`.
REST: `/v2/aggs/ticker/{t}/range/1/minute/{from}/{to}` and `/v3/trades/{t}`,
paged with a complete `next_url` carrying a cursor; the key comes as `apiKey` or
`Authorization: Bearer`; 401 for a bad key, 429 when over the limit.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
from dataclasses import dataclass, field

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route
from websockets.asyncio.server import ServerConnection
from websockets.exceptions import ConnectionClosed

from .common import Clients, ProviderServer, RateLimit
from .market import FakeMarket, MinuteBar, Trade


def encode_cursor(state: dict) -> str:
    return base64.urlsafe_b64encode(json.dumps(state).encode()).decode()


def decode_cursor(cursor: str) -> dict:
    return json.loads(base64.urlsafe_b64decode(cursor.encode()))


@dataclass
class FakePolygon(ProviderServer):
    symbols: list[str]
    key: str = "test-key"
    page_size: int = 200
    live_interval: float | None = None
    max_connections: int = 1_000
    limit: RateLimit = field(default_factory=lambda: RateLimit(retry_after=None))

    def __post_init__(self) -> None:
        self.market = FakeMarket(self.symbols)
        self.clients = Clients()
        self.subscriptions: dict[ServerConnection, set[str]] = {}
        self.rest_requests = 0
        self.auth_failures = 0

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.ws_port}"

    # WebSocket ---------------------------------------------------------------------------------
    async def _session(self, connection: ServerConnection) -> None:
        async def status(*messages: tuple[str, str]) -> None:
            await connection.send(
                json.dumps([{"ev": "status", "status": s, "message": m} for s, m in messages])
            )

        if connection.request.path != "/stocks":
            await status(("error", f"unknown market {connection.request.path!r}"))
            return
        await status(("connected", "Connected Successfully"))
        try:
            auth = json.loads(await asyncio.wait_for(connection.recv(), 10))
        except TimeoutError:
            return
        if auth.get("action") != "auth" or auth.get("params") != self.key:
            self.auth_failures += 1
            await status(("auth_failed", "authentication failed"))
            await connection.close()
            return
        if len(self.clients.open) >= self.max_connections:
            # As documented: a status message, then the socket closed with 1008 (policy violation).
            await status(("max_connections", "Maximum number of websocket connections exceeded."))
            await connection.close(1008, "max_connections")
            return
        await status(("auth_success", "authenticated"))
        self.clients.add(connection)
        self.subscriptions[connection] = set()
        try:
            async for frame in connection:
                request = json.loads(frame)
                topics = [t.strip() for t in str(request.get("params", "")).split(",") if t.strip()]
                if request.get("action") == "subscribe":
                    self.subscriptions[connection].update(topics)
                    await status(*(("success", f"subscribed to: {t}") for t in topics))
                elif request.get("action") == "unsubscribe":
                    self.subscriptions[connection].difference_update(topics)
                    await status(*(("success", f"unsubscribed to: {t}") for t in topics))
        except ConnectionClosed:
            pass
        finally:
            self.clients.open.discard(connection)
            self.subscriptions.pop(connection, None)

    def _broadcast(self, symbol: str, trade: Trade) -> None:
        if self.clients.silent:
            return
        for connection, topics in list(self.subscriptions.items()):
            events = []
            if f"T.{symbol}" in topics:
                events.append(
                    {
                        "ev": "T",
                        "sym": symbol,
                        "x": 4,
                        "i": str(trade.id),
                        "z": 3,
                        "p": trade.price,
                        "s": trade.size,
                        "c": [0],
                        "t": trade.time_ms,
                        "q": trade.id,
                    }
                )
            if f"Q.{symbol}" in topics:
                events.append(
                    {
                        "ev": "Q",
                        "sym": symbol,
                        "bx": 4,
                        "bp": trade.price - 0.01,
                        "bs": 1,
                        "ax": 7,
                        "ap": trade.price + 0.01,
                        "as": 2,
                        "c": 0,
                        "t": trade.time_ms,
                        "q": trade.id,
                        "z": 3,
                    }
                )
            if events:
                self.clients.deliver(connection, symbol, json.dumps(events))

    async def _send_quietly(self, connection: ServerConnection, events: list[dict]) -> None:
        with contextlib.suppress(ConnectionClosed):
            await connection.send(json.dumps(events))

    def send_bar(self, bar: MinuteBar) -> None:
        async def push() -> None:
            event = {
                "ev": "AM",
                "sym": bar.symbol,
                "v": bar.volume,
                "av": bar.volume,
                "op": bar.open,
                "vw": bar.close,
                "o": bar.open,
                "c": bar.close,
                "h": bar.high,
                "l": bar.low,
                "a": bar.close,
                "z": 100,
                "s": bar.time_ms,
                "e": bar.time_ms + 60_000,
            }
            for connection, topics in list(self.subscriptions.items()):
                if f"AM.{bar.symbol}" in topics:
                    await self._send_quietly(connection, [event])

        self._loop.call(push())

    # REST --------------------------------------------------------------------------------------
    def _app(self) -> Starlette:
        return Starlette(
            routes=[
                Route("/v2/aggs/ticker/{symbol}/range/1/minute/{start:int}/{end:int}", self._aggs),
                Route("/v3/trades/{symbol}", self._trades),
            ]
        )

    def _refusal(self, request: Request) -> JSONResponse | None:
        self.rest_requests += 1
        if self.outage_answer():
            return JSONResponse(
                {"status": "ERROR", "request_id": "fake", "error": "Service Unavailable"}, 503
            )
        bearer = request.headers.get("authorization", "").removeprefix("Bearer ")
        if (request.query_params.get("apiKey") or bearer) != self.key:
            return JSONResponse({"status": "ERROR", "request_id": "fake", "error": "Unknown API Key"}, 401)
        if self.limit.admit() is not None:
            return JSONResponse(
                {
                    "status": "ERROR",
                    "request_id": "fake",
                    "error": "You've exceeded the maximum requests per minute, please wait or upgrade.",
                },
                429,
            )
        return None

    def _page(self, request: Request, rows: list[dict], state: dict, path: str) -> JSONResponse:
        offset = state.get("offset", 0)
        limit = min(int(request.query_params.get("limit", 5000)), self.page_size)
        page = rows[offset : offset + limit]
        body: dict = {"status": "OK", "request_id": "fake", "results": page, "resultsCount": len(page)}
        if offset + limit < len(rows):
            cursor = encode_cursor({**state, "offset": offset + limit, "limit": limit})
            body["next_url"] = f"{self.rest_url}{path}?cursor={cursor}"
        return JSONResponse(body)

    async def _aggs(self, request: Request) -> JSONResponse:
        refused = self._refusal(request)
        if refused is not None:
            return refused
        symbol = request.path_params["symbol"]
        cursor = request.query_params.get("cursor")
        state = decode_cursor(cursor) if cursor else {}
        start, end = request.path_params["start"], request.path_params["end"]
        rows = [
            {
                "v": b.volume,
                "vw": b.close,
                "o": b.open,
                "c": b.close,
                "h": b.high,
                "l": b.low,
                "t": b.time_ms,
                "n": b.trades,
            }
            for b in self.market.bars(symbol, start, end + 1)
        ]
        response = self._page(request, rows, state, request.url.path)
        return response

    async def _trades(self, request: Request) -> JSONResponse:
        refused = self._refusal(request)
        if refused is not None:
            return refused
        symbol = request.path_params["symbol"]
        cursor = request.query_params.get("cursor")
        if cursor:
            state = decode_cursor(cursor)
        else:
            query = request.query_params
            state = {"gte": int(query.get("timestamp.gte", 0)), "lt": int(query.get("timestamp.lt", 2**62))}
        start_ms, end_ms = state["gte"] // 1_000_000, -(-state["lt"] // 1_000_000)
        rows = [
            {
                "conditions": [0],
                "exchange": 4,
                "id": str(t.id),
                "participant_timestamp": t.time_ms * 10**6,
                "price": t.price,
                "sequence_number": t.id,
                "sip_timestamp": t.time_ms * 10**6 + 123,
                "size": t.size,
                "tape": 3,
            }
            for t in self.market.trades(symbol, start_ms, end_ms)
            if state["gte"] <= t.time_ms * 10**6 + 123 < state["lt"]
        ]
        return self._page(request, rows, state, request.url.path)
