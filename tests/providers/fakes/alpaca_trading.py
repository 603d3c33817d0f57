"""A local Alpaca trading API: REST v2 orders, positions, account and activities, and the
`trade_updates` WebSocket, as Alpaca documents them.

REST (headers APCA-API-KEY-ID / APCA-API-SECRET-KEY, else 401 "request is not authorized";
429 with X-RateLimit-* and Retry-After when over the rate): `POST /v2/orders` (market and
limit; `order_class` simple, bracket or oto with `take_profit.limit_price` and
`stop_loss.stop_price`; 422 "client_order_id must be unique" for a reused id; 403
"insufficient buying power" / "insufficient qty available for order"), `GET /v2/orders`
(`status` open|closed|all, `nested`), `GET /v2/orders:by_client_order_id`, `GET` and `DELETE
/v2/orders/{id}`, `GET /v2/positions`, `GET /v2/account`, `GET /v2/account/activities/FILL`
(`after`, `direction`, `page_size`, `page_token`), `GET /v2/assets`.

Stream (binary JSON frames): the client authenticates with `{"action": "authenticate", "data":
{"key_id", "secret_key"}}` (or the newer `{"action": "auth", "key", "secret"}`) and is answered on
the `authorization` stream (`authorized` / `unauthorized`); `{"action": "listen", "data":
{"streams": ["trade_updates"]}}` is acknowledged on the `listening` stream; order events
(new, fill, partial_fill, canceled, expired, rejected) arrive on `trade_updates` with the order,
and for fills the execution's price, qty and the position's qty.

Orders do not fill by themselves unless `auto_fill` (market orders then fill at once at
`prices[symbol]`); a test fills, cancels, expires or rejects them with the methods below.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import uuid
from dataclasses import dataclass, field
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from websockets.asyncio.server import ServerConnection
from websockets.exceptions import ConnectionClosed

from tradebot.providers.ticks import parse_rfc3339

from .alpaca import asset
from .common import Clients, ProviderServer, RateLimit
from .market import FakeMarket, Trade

FINAL = ("filled", "canceled", "expired", "rejected")


def now_text() -> str:
    return dt.datetime.now(dt.UTC).isoformat().replace("+00:00", "Z")


def error(status: int, code: int, message: str) -> JSONResponse:
    return JSONResponse({"code": code, "message": message}, status_code=status)


@dataclass
class FakeAlpacaTrading(ProviderServer):
    symbols: list[str] = field(default_factory=lambda: ["AAPL", "MSFT"])
    key: str = "test-key"
    secret: str = "test-secret"
    cash: float = 100_000.0
    auto_fill: bool = True
    limit: RateLimit = field(default_factory=RateLimit)
    live_interval: float | None = None

    def __post_init__(self) -> None:
        self.market = FakeMarket(self.symbols)
        self.clients = Clients()
        self.prices: dict[str, float] = dict.fromkeys(self.symbols, 100.0)
        self.orders: dict[str, dict[str, Any]] = {}
        self.parents: dict[str, str] = {}  # leg id -> parent id
        self.positions: dict[str, list[float]] = {}  # symbol -> [qty, cost basis]
        self.activities: list[dict[str, Any]] = []
        self.listening: set[ServerConnection] = set()
        self.posts: list[str] = []  # client_order_id of every POST /v2/orders, accepted or not
        self.stream_down = False
        self.auth_failures = 0
        self.events: list[dict[str, Any]] = []

    @property
    def stream_url(self) -> str:
        return f"ws://127.0.0.1:{self.ws_port}/stream"

    # test controls (thread-safe: they run in the fake's loop) ---------------------------------
    def _run(self, work: Any) -> Any:
        async def call() -> Any:
            return work()

        return self._loop.call(call())

    def order(self, client_order_id: str) -> dict[str, Any]:
        """The order placed with `client_order_id` (as the REST API shows it)."""
        return self._run(lambda: self._public(self._by_client(client_order_id)))

    def leg(self, client_order_id: str, order_type: str) -> str:
        """The client_order_id of a bracket leg: `limit` (take-profit) or `stop` (stop-loss)."""
        parent = self._by_client(client_order_id)
        return next(o["client_order_id"] for o in self._legs(parent["id"]) if o["type"] == order_type)

    def fill(self, client_order_id: str, qty: float | None = None, price: float | None = None) -> None:
        def work() -> None:
            order = self._by_client(client_order_id)
            left = float(order["qty"]) - float(order["filled_qty"])
            self._fill(order, left if qty is None else qty, price or self.prices[order["symbol"]])

        self._run(work)

    def end(self, client_order_id: str, status: str) -> None:
        """Cancel, expire or reject an order at the broker's initiative."""
        self._run(lambda: self._end(self._by_client(client_order_id), status))

    def set_position(self, symbol: str, qty: float, average: float) -> None:
        """Change a position behind the client's back (a trade made by hand on Alpaca's dashboard)."""

        def work() -> None:
            self.positions[symbol] = [qty, qty * average]

        self._run(work)

    def set_stream_down(self, down: bool) -> None:
        """While down, new stream connections are closed at once (the network, or Alpaca, is away)."""
        self.stream_down = down

    def placed(self, client_order_id: str) -> int:
        """How many orders exist with this client_order_id (Alpaca allows one)."""
        return self._run(lambda: sum(o["client_order_id"] == client_order_id for o in self.orders.values()))

    # the book -------------------------------------------------------------------------------
    def _by_client(self, client_order_id: str) -> dict[str, Any]:
        return next(o for o in self.orders.values() if o["client_order_id"] == client_order_id)

    def _legs(self, parent_id: str) -> list[dict[str, Any]]:
        return [self.orders[leg] for leg, parent in self.parents.items() if parent == parent_id]

    def _public(self, order: dict[str, Any], nested: bool = True) -> dict[str, Any]:
        legs = self._legs(order["id"])
        shown = {**order, "legs": [self._public(leg) for leg in legs] if legs and nested else None}
        return shown

    def _make(self, body: dict[str, Any], kind: str, side: str, status: str, **extra: Any) -> dict[str, Any]:
        moment = now_text()
        order = {
            "id": str(uuid.uuid4()),
            "client_order_id": body.get("client_order_id") or str(uuid.uuid4()),
            "created_at": moment,
            "updated_at": moment,
            "submitted_at": moment,
            "filled_at": None,
            "expired_at": None,
            "canceled_at": None,
            "failed_at": None,
            "asset_id": str(uuid.uuid5(uuid.NAMESPACE_URL, body["symbol"])),
            "symbol": body["symbol"],
            "asset_class": "us_equity",
            "qty": str(body["qty"]),
            "filled_qty": "0",
            "filled_avg_price": None,
            "order_class": body.get("order_class") or "simple",
            "order_type": kind,
            "type": kind,
            "side": side,
            "time_in_force": body["time_in_force"],
            "limit_price": None,
            "stop_price": None,
            "status": status,
            "extended_hours": False,
            "legs": None,
            **extra,
        }
        self.orders[order["id"]] = order
        return order

    def _available(self, symbol: str) -> float:
        """Shares not held for open sell orders (a bracket's two legs hold the shares once)."""
        held: dict[str, float] = {}
        for order in self.orders.values():
            if order["symbol"] == symbol and order["side"] == "sell" and order["status"] not in FINAL:
                group = self.parents.get(order["id"], order["id"])
                left = float(order["qty"]) - float(order["filled_qty"])
                held[group] = max(held.get(group, 0.0), left)
        return self.positions.get(symbol, [0.0, 0.0])[0] - sum(held.values())

    def _event(self, event: str, order: dict[str, Any], **fields: Any) -> None:
        message = {"event": event, "timestamp": now_text(), "order": self._public(order), **fields}
        self.events.append(message)
        frame = json.dumps({"stream": "trade_updates", "data": message}).encode()
        for connection in list(self.listening):
            self.clients.deliver(connection, order["symbol"], frame)

    def _fill(self, order: dict[str, Any], qty: float, price: float) -> None:
        filled = float(order["filled_qty"])
        average = float(order["filled_avg_price"] or 0)
        total = filled + qty
        order["filled_avg_price"] = str(round((average * filled + price * qty) / total, 6))
        order["filled_qty"] = f"{total:g}"
        done = total >= float(order["qty"])
        order["status"] = "filled" if done else "partially_filled"
        order["updated_at"] = now_text()
        if done:
            order["filled_at"] = order["updated_at"]
        position = self.positions.setdefault(order["symbol"], [0.0, 0.0])
        if order["side"] == "buy":
            position[0] += qty
            position[1] += qty * price
            self.cash -= qty * price
        else:
            position[1] -= position[1] / position[0] * qty if position[0] else 0.0
            position[0] -= qty
            self.cash += qty * price
        if position[0] <= 0:
            self.positions.pop(order["symbol"])
        event = "fill" if done else "partial_fill"
        moment = dt.datetime.now(dt.UTC)
        self.activities.append({
            "id": f"{moment:%Y%m%d%H%M%S%f}::{uuid.uuid4()}",
            "activity_type": "FILL",
            "transaction_time": moment.isoformat().replace("+00:00", "Z"),
            "type": event,
            "price": str(price),
            "qty": f"{qty:g}",
            "side": order["side"],
            "symbol": order["symbol"],
            "leaves_qty": f"{float(order['qty']) - total:g}",
            "order_id": order["id"],
            "cum_qty": f"{total:g}",
            "order_status": order["status"],
        })  # fmt: skip
        self._event(event, order, price=str(price), qty=f"{qty:g}", execution_id=str(uuid.uuid4()),
                    position_qty=f"{self.positions.get(order['symbol'], [0.0])[0]:g}")  # fmt: skip
        if done:
            for leg in self._legs(order["id"]):  # the bracket's exits go live
                leg["status"] = "new"
                self._event("new", leg)
            parent = self.parents.get(order["id"])
            for sibling in self._legs(parent) if parent else ():  # one-cancels-other
                if sibling is not order and sibling["status"] not in FINAL:
                    self._end(sibling, "canceled")

    def _end(self, order: dict[str, Any], status: str) -> None:
        order["status"] = status
        order["updated_at"] = now_text()
        stamp = {"canceled": "canceled_at", "expired": "expired_at", "rejected": "failed_at"}[status]
        order[stamp] = now_text()
        self._event(status, order)
        for leg in self._legs(order["id"]):
            if leg["status"] not in FINAL:
                self._end(leg, "canceled")

    # WebSocket ------------------------------------------------------------------------------
    async def _session(self, connection: ServerConnection) -> None:
        async def send(stream: str, data: dict[str, Any]) -> None:
            await connection.send(json.dumps({"stream": stream, "data": data}).encode())

        if self.stream_down:
            await connection.close(1011, "unavailable")
            return
        try:
            auth = json.loads(await asyncio.wait_for(connection.recv(), 10))
        except (TimeoutError, ConnectionClosed):
            return
        data = auth.get("data") or {}
        offered = (data.get("key_id"), data.get("secret_key"))
        if auth.get("action") == "auth":
            offered = (auth.get("key"), auth.get("secret"))
        if auth.get("action") not in ("authenticate", "auth") or offered != (self.key, self.secret):
            self.auth_failures += 1
            await send("authorization", {"action": "authenticate", "status": "unauthorized"})
            await connection.close()
            return
        await send("authorization", {"action": "authenticate", "status": "authorized"})
        self.clients.add(connection)
        try:
            async for frame in connection:
                request = json.loads(frame)
                if request.get("action") != "listen":
                    await send("error", {"error": "invalid action"})
                    continue
                streams = [s for s in (request.get("data") or {}).get("streams", ()) if s == "trade_updates"]
                if streams:
                    self.listening.add(connection)
                else:
                    self.listening.discard(connection)
                await send("listening", {"streams": streams})
        except ConnectionClosed:
            pass
        finally:
            self.clients.open.discard(connection)
            self.listening.discard(connection)

    def _broadcast(self, symbol: str, trade: Trade) -> None:
        """The trading fake has no market tape of its own."""

    # REST -----------------------------------------------------------------------------------
    def _app(self) -> Starlette:
        return Starlette(
            routes=[
                Route("/v2/account", self._account),
                Route("/v2/orders", self._orders, methods=["GET", "POST"]),
                Route("/v2/orders:by_client_order_id", self._by_client_order_id),
                Route("/v2/orders/{order_id}", self._one_order, methods=["GET", "DELETE"]),
                Route("/v2/positions", self._positions),
                Route("/v2/account/activities/{activity_type}", self._activities),
                Route("/v2/assets", self._assets),
            ]
        )

    def _refusal(self, request: Request) -> JSONResponse | None:
        if self.outage_answer():
            return error(503, 50010000, "service unavailable")
        if (request.headers.get("apca-api-key-id"), request.headers.get("apca-api-secret-key")) != (
            self.key,
            self.secret,
        ):
            return error(401, 40110000, "request is not authorized")
        wait = self.limit.admit()
        if wait is not None:
            reset = int(dt.datetime.now(dt.UTC).timestamp() + max(1.0, wait))
            headers = {"X-RateLimit-Limit": "200", "X-RateLimit-Remaining": "0"}
            headers["X-RateLimit-Reset"] = str(reset)
            if self.limit.retry_after is not None:
                headers["Retry-After"] = f"{wait:.3f}"
            return JSONResponse({"code": 42910000, "message": "rate limit exceeded"}, 429, headers=headers)
        return None

    async def _account(self, request: Request) -> Response:
        if refused := self._refusal(request):
            return refused
        value = sum(q * self.prices.get(s, 0.0) for s, (q, _) in self.positions.items())
        return JSONResponse({
            "id": "7f1b0f0e-2f5b-4f3a-9a53-2d4c1b1f2e10", "account_number": "PA1TEST", "status": "ACTIVE",
            "currency": "USD", "cash": f"{self.cash:.2f}", "buying_power": f"{self.cash:.2f}",
            "equity": f"{self.cash + value:.2f}", "portfolio_value": f"{self.cash + value:.2f}",
            "trading_blocked": False, "account_blocked": False, "transfers_blocked": False,
            "pattern_day_trader": False, "shorting_enabled": False, "multiplier": "1",
        })  # fmt: skip

    async def _orders(self, request: Request) -> Response:
        if refused := self._refusal(request):
            return refused
        if request.method == "POST":
            return self._submit(await request.json())
        query = request.query_params
        status, nested = query.get("status", "open"), query.get("nested") == "true"
        shown = []
        for order in self.orders.values():
            is_leg = order["id"] in self.parents
            if nested and is_leg and self._matches(self.orders[self.parents[order["id"]]], status):
                continue  # shown inside its parent
            if self._matches(order, status):
                shown.append(self._public(order, nested))
        return JSONResponse(shown[: int(query.get("limit", 50))])

    @staticmethod
    def _matches(order: dict[str, Any], status: str) -> bool:
        closed = order["status"] in FINAL
        return status == "all" or (status == "closed") == closed

    def _submit(self, body: dict[str, Any]) -> Response:
        self.posts.append(str(body.get("client_order_id")))
        symbol, side, kind = body.get("symbol"), body.get("side"), body.get("type")
        if symbol not in self.prices:
            return error(422, 40010001, f"asset {symbol!r} not found")
        try:
            qty = float(body["qty"])
        except (KeyError, TypeError, ValueError):
            return error(422, 40010001, "qty is required")
        if qty <= 0 or side not in ("buy", "sell") or kind not in ("market", "limit"):
            return error(422, 40010001, "invalid order: qty, side or type")
        if body.get("time_in_force") not in ("day", "gtc", "opg", "cls", "ioc", "fok"):
            return error(422, 40010001, "invalid time_in_force")
        if any(o["client_order_id"] == body.get("client_order_id") for o in self.orders.values()):
            return error(422, 40010001, "client_order_id must be unique")
        if kind == "limit" and not body.get("limit_price"):
            return error(422, 40010001, "limit_price is required for limit orders")
        base = float(body.get("limit_price") or self.prices[symbol])
        order_class = body.get("order_class") or "simple"
        take = (body.get("take_profit") or {}).get("limit_price")
        stop = (body.get("stop_loss") or {}).get("stop_price")
        if order_class == "bracket" and not (take and stop):
            return error(422, 40010001, "bracket orders require take_profit and stop_loss")
        if take and float(take) < base + 0.01:
            return error(422, 40010001, "take_profit.limit_price must be >= base_price + 0.01")
        if stop and float(stop) > base - 0.01:
            return error(422, 40010001, "stop_loss.stop_price must be <= base_price - 0.01")
        if side == "buy" and qty * base > self.cash:
            return error(403, 40310000, "insufficient buying power")
        if side == "sell" and qty > self._available(symbol):
            available = self._available(symbol)
            return error(403, 40310000, f"insufficient qty available for order (requested: {qty:g}, "
                                        f"available: {available:g})")  # fmt: skip
        order = self._make(body, kind, side, "new", limit_price=body.get("limit_price"))
        exit_side = "sell" if side == "buy" else "buy"
        leg_body = {"symbol": symbol, "qty": body["qty"], "time_in_force": body["time_in_force"],
                    "order_class": order_class}  # fmt: skip
        if take:
            leg = self._make(leg_body, "limit", exit_side, "held", limit_price=str(take))
            self.parents[leg["id"]] = order["id"]
        if stop:
            leg = self._make(leg_body, "stop", exit_side, "held", stop_price=str(stop))
            self.parents[leg["id"]] = order["id"]
        self._event("new", order)
        if self.auto_fill and kind == "market":
            self._fill(order, qty, self.prices[symbol])
        return JSONResponse(self._public(order))

    async def _by_client_order_id(self, request: Request) -> Response:
        if refused := self._refusal(request):
            return refused
        wanted = request.query_params.get("client_order_id")
        found = [o for o in self.orders.values() if o["client_order_id"] == wanted]
        return JSONResponse(self._public(found[0])) if found else error(404, 40410000, "order not found")

    async def _one_order(self, request: Request) -> Response:
        if refused := self._refusal(request):
            return refused
        order = self.orders.get(request.path_params["order_id"])
        if order is None:
            return error(404, 40410000, "order not found")
        if request.method == "DELETE":
            if order["status"] in FINAL:
                return error(422, 42210000, f'order is already in "{order["status"]}" state')
            self._end(order, "canceled")
            return Response(status_code=204)
        return JSONResponse(self._public(order))

    async def _positions(self, request: Request) -> Response:
        if refused := self._refusal(request):
            return refused
        shown = []
        for symbol, (qty, cost) in sorted(self.positions.items()):
            price = self.prices.get(symbol, cost / qty)
            shown.append({
                "asset_id": str(uuid.uuid5(uuid.NAMESPACE_URL, symbol)), "symbol": symbol,
                "exchange": "NASDAQ", "asset_class": "us_equity", "asset_marginable": True, "qty": f"{qty:g}",
                "qty_available": f"{self._available(symbol):g}", "avg_entry_price": str(round(cost / qty, 6)),
                "side": "long", "market_value": f"{qty * price:.2f}", "cost_basis": f"{cost:.2f}",
                "unrealized_pl": f"{qty * price - cost:.2f}", "current_price": str(price),
                "lastday_price": str(price), "change_today": "0",
            })  # fmt: skip
        return JSONResponse(shown)

    async def _activities(self, request: Request) -> Response:
        if refused := self._refusal(request):
            return refused
        if request.path_params["activity_type"] != "FILL":
            return JSONResponse([])
        query = request.query_params
        rows = list(self.activities)
        if query.get("after"):
            after = parse_rfc3339(query["after"])
            rows = [a for a in rows if parse_rfc3339(a["transaction_time"]) > after]
        if query.get("direction", "desc") == "desc":
            rows.reverse()
        if query.get("page_token"):
            ids = [a["id"] for a in rows]
            rows = rows[ids.index(query["page_token"]) + 1 :] if query["page_token"] in ids else []
        return JSONResponse(rows[: min(int(query.get("page_size", 100)), 100)])

    async def _assets(self, request: Request) -> Response:
        if refused := self._refusal(request):
            return refused
        return JSONResponse([asset(symbol) for symbol in self.symbols])
