"""A local Alpaca: the market-data WebSocket (msgpack) and REST v2 (bars, trades, assets).

WebSocket, as documented: on connect `[{"T":"success","msg":"connected"}]`; the
client sends `{"action":"auth","key","secret"}` and gets `authenticated` or an
error frame (402 auth failed, 406 connection limit exceeded); `subscribe` with
trades/quotes/bars lists is answered by a `subscription` frame; data arrives as
arrays of `t`, `q` and `b` messages with msgpack timestamps. REST: per-symbol
`/v2/stocks/{symbol}/bars|trades` with `next_page_token`, 401 for bad keys, 429
with X-RateLimit-* headers; `/v2/assets` for the trading API.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import datetime as dt
import time
import uuid
from dataclasses import dataclass, field

import msgpack
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route
from websockets.asyncio.server import ServerConnection
from websockets.exceptions import ConnectionClosed

from tradebot.providers.ticks import parse_rfc3339

from .common import Clients, ProviderServer, RateLimit
from .market import FakeMarket, MinuteBar, Trade

CHANNELS = ("trades", "quotes", "bars", "updatedBars", "dailyBars", "statuses", "lulds")


def rfc3339(time_ms: int) -> str:
    seconds, millis = divmod(time_ms, 1000)
    moment = dt.datetime.fromtimestamp(seconds, dt.UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S") + f".{millis:03d}Z"


def parse_time(text: str) -> int:
    return int(parse_rfc3339(text).timestamp() * 1000)


def stamp(time_ms: int) -> msgpack.Timestamp:
    return msgpack.Timestamp(time_ms // 1000, (time_ms % 1000) * 1_000_000)


@dataclass
class FakeAlpaca(ProviderServer):
    symbols: list[str]
    key: str = "test-key"
    secret: str = "test-secret"
    page_size: int = 200
    max_connections: int = 1
    max_symbols: int = 1_000  # per channel; more is refused with 405 "symbol limit exceeded"
    live_interval: float | None = None  # seconds between live trades per symbol; None: no live tape
    limit: RateLimit = field(default_factory=RateLimit)
    assets: list[dict] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.market = FakeMarket(self.symbols)
        self.clients = Clients()
        self.subscriptions: dict[ServerConnection, dict[str, set[str]]] = {}
        self.rest_requests = 0
        self.auth_failures = 0

    @property
    def stream_url(self) -> str:
        return f"ws://127.0.0.1:{self.ws_port}/v2/iex"

    # WebSocket ---------------------------------------------------------------------------------
    async def _session(self, connection: ServerConnection) -> None:
        async def send(*messages: dict) -> None:
            await connection.send(msgpack.packb(list(messages)))

        await send({"T": "success", "msg": "connected"})
        try:
            auth = msgpack.unpackb(await asyncio.wait_for(connection.recv(), 10))
        except TimeoutError:
            await send({"T": "error", "code": 404, "msg": "auth timeout"})
            return
        if auth.get("action") != "auth" or (auth.get("key"), auth.get("secret")) != (self.key, self.secret):
            self.auth_failures += 1
            await send({"T": "error", "code": 402, "msg": "auth failed"})
            return
        if len(self.clients.open) >= self.max_connections:
            await send({"T": "error", "code": 406, "msg": "connection limit exceeded"})
            return
        await send({"T": "success", "msg": "authenticated"})
        self.clients.add(connection)
        self.subscriptions[connection] = {channel: set() for channel in CHANNELS}
        try:
            async for frame in connection:
                request = msgpack.unpackb(frame)
                if request.get("action") not in ("subscribe", "unsubscribe"):
                    await send({"T": "error", "code": 400, "msg": "invalid syntax"})
                    continue
                wanted = self.subscriptions[connection]
                changed = {c: set(request.get(c) or ()) for c in CHANNELS}
                if request["action"] == "subscribe" and any(
                    len(wanted[c] | names) > self.max_symbols for c, names in changed.items()
                ):
                    await send({"T": "error", "code": 405, "msg": "symbol limit exceeded"})
                    continue
                for channel, names in changed.items():
                    if request["action"] == "subscribe":
                        wanted[channel] |= names
                    else:
                        wanted[channel] -= names
                await send({"T": "subscription", **{c: sorted(s) for c, s in wanted.items()}})
        except ConnectionClosed:
            pass
        finally:
            self.clients.open.discard(connection)
            self.subscriptions.pop(connection, None)

    def _broadcast(self, symbol: str, trade: Trade) -> None:
        if self.clients.silent:
            return
        for connection, wanted in list(self.subscriptions.items()):
            messages = []
            if symbol in wanted["trades"]:
                messages.append(
                    {
                        "T": "t",
                        "i": trade.id,
                        "S": symbol,
                        "x": "V",
                        "p": trade.price,
                        "s": trade.size,
                        "t": stamp(trade.time_ms),
                        "c": ["@"],
                        "z": "C",
                    }
                )
            if symbol in wanted["quotes"]:
                messages.append(
                    {
                        "T": "q",
                        "S": symbol,
                        "bx": "V",
                        "bp": trade.price - 0.01,
                        "bs": 1,
                        "ax": "V",
                        "ap": trade.price + 0.01,
                        "as": 2,
                        "t": stamp(trade.time_ms),
                        "c": ["R"],
                        "z": "C",
                    }
                )
            if messages:
                self.clients.deliver(connection, symbol, msgpack.packb(messages))

    async def _send_quietly(self, connection: ServerConnection, messages: list[dict]) -> None:
        with contextlib.suppress(ConnectionClosed):
            await connection.send(msgpack.packb(messages))

    def send_bar(self, bar: MinuteBar) -> None:
        """Push a `b` (minute bar) message to subscribers of the symbol's bars."""

        async def push() -> None:
            message = {
                "T": "b",
                "S": bar.symbol,
                "o": bar.open,
                "h": bar.high,
                "l": bar.low,
                "c": bar.close,
                "v": bar.volume,
                "t": stamp(bar.time_ms),
                "n": bar.trades,
                "vw": bar.close,
            }
            for connection, wanted in list(self.subscriptions.items()):
                if bar.symbol in wanted["bars"]:
                    await self._send_quietly(connection, [message])

        self._loop.call(push())

    # REST --------------------------------------------------------------------------------------
    def _app(self) -> Starlette:
        return Starlette(
            routes=[
                Route("/v2/stocks/{symbol}/{kind:str}", self._history),
                Route("/v2/assets", self._assets),
            ]
        )

    def _refusal(self, request: Request) -> JSONResponse | None:
        self.rest_requests += 1
        if self.outage_answer():
            return JSONResponse({"code": 50010000, "message": "service unavailable"}, status_code=503)
        if (request.headers.get("apca-api-key-id"), request.headers.get("apca-api-secret-key")) != (
            self.key,
            self.secret,
        ):
            return JSONResponse({"code": 40110000, "message": "request is not authorized"}, status_code=401)
        wait = self.limit.admit()
        if wait is not None:
            reset = int(time.time() + max(1.0, wait))
            headers = {
                "X-RateLimit-Limit": "200",
                "X-RateLimit-Remaining": "0",
                "X-RateLimit-Reset": str(reset),
            }
            if self.limit.retry_after is not None:
                headers["Retry-After"] = f"{wait:.3f}"
            return JSONResponse({"code": 42910000, "message": "rate limit exceeded"}, 429, headers=headers)
        return None

    async def _history(self, request: Request) -> JSONResponse:
        refused = self._refusal(request)
        if refused is not None:
            return refused
        symbol, kind = request.path_params["symbol"], request.path_params["kind"]
        if kind not in ("bars", "trades"):
            return JSONResponse({"message": "not found"}, 404)
        query = request.query_params
        try:
            start, end = parse_time(query["start"]), parse_time(query["end"])
        except (KeyError, ValueError):
            return JSONResponse({"code": 42210000, "message": "invalid start or end"}, 422)
        if kind == "bars" and query.get("timeframe") != "1Min":
            return JSONResponse({"code": 42210000, "message": "only 1Min bars here"}, 422)
        limit = min(int(query.get("limit", 1000)), self.page_size)
        offset = int(base64.b64decode(query["page_token"]).decode()) if query.get("page_token") else 0
        if kind == "bars":
            rows = [
                {
                    "t": rfc3339(b.time_ms),
                    "o": b.open,
                    "h": b.high,
                    "l": b.low,
                    "c": b.close,
                    "v": b.volume,
                    "n": b.trades,
                    "vw": b.close,
                }
                for b in self.market.bars(symbol, start, end)
            ]
        else:
            rows = [
                {
                    "t": rfc3339(t.time_ms),
                    "x": "V",
                    "p": t.price,
                    "s": t.size,
                    "c": ["@"],
                    "i": t.id,
                    "z": "C",
                }
                for t in self.market.trades(symbol, start, end)
            ]
        page = rows[offset : offset + limit]
        more = offset + limit < len(rows)
        token = base64.b64encode(str(offset + limit).encode()).decode() if more else None
        return JSONResponse({kind: page or None, "symbol": symbol, "next_page_token": token})

    async def _assets(self, request: Request) -> JSONResponse:
        refused = self._refusal(request)
        if refused is not None:
            return refused
        return JSONResponse(self.assets)


def asset(symbol: str, exchange: str = "NASDAQ", **overrides) -> dict:
    """One asset as the trading API lists it."""
    return {
        "id": str(uuid.uuid5(uuid.NAMESPACE_URL, symbol)),
        "class": "us_equity",
        "exchange": exchange,
        "symbol": symbol,
        "name": f"{symbol} Inc.",
        "status": "active",
        "tradable": True,
        "marginable": True,
        "shortable": True,
        "easy_to_borrow": True,
        "fractionable": True,
        "attributes": [],
        **overrides,
    }
