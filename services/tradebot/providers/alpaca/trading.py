"""Alpaca's trading API as an execution venue, through alpaca-py.

Orders, positions, the account and fills go over REST with the SDK's
`TradingClient` (blocking `requests`, so each call runs in a worker thread); order
events come from the `trade_updates` WebSocket through the SDK's `TradingStream`,
driven one connection at a time with its own steps (`_start_ws`, `_consume`) so
that a drop or a refused key reaches us instead of being logged and retried inside
the SDK, and so that we know when Alpaca acknowledged the `listen` (the moment to
reconcile).

The SDK retries a 429 on a fixed 3 s and hides Retry-After; its retries are off
here and `_call` waits as long as Alpaca asks (Retry-After, or X-RateLimit-Reset),
as the REST history does. A retried order is safe: its client_order_id is the
signal's id, and Alpaca refuses a second order with the same one ("client_order_id
must be unique"), which `submit` answers by fetching the order already placed.

Paper trading is the default. Alpaca's live endpoints are used only with
ALPACA_LIVE_TRADING=true (settings refuse a live URL without it).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from collections.abc import Callable
from datetime import datetime
from functools import cached_property
from typing import Any

import requests
from alpaca.common.exceptions import APIError
from alpaca.trading.client import TradingClient
from alpaca.trading.enums import OrderClass, OrderSide, QueryOrderStatus, TimeInForce
from alpaca.trading.models import Order as SdkOrder
from alpaca.trading.models import Position as SdkPosition
from alpaca.trading.models import TradeAccount, TradeUpdate
from alpaca.trading.requests import (
    GetOrdersRequest,
    LimitOrderRequest,
    MarketOrderRequest,
    StopLossRequest,
    TakeProfitRequest,
)
from alpaca.trading.stream import TradingStream
from pydantic import ValidationError

from tradebot.common.models import Side
from tradebot.common.settings import PAPER_TRADING_STREAM_URL, PAPER_TRADING_URL, Settings, reveal
from tradebot.execution.venue import (
    FILL_EVENTS,
    BrokerAccount,
    BrokerFill,
    BrokerOrder,
    BrokerPosition,
    BrokerUpdate,
    OrderIntent,
    OrderRefused,
    VenueRejected,
)
from tradebot.providers.http import MAX_ATTEMPTS, RATE_LIMIT_PATIENCE, ProviderError, ProviderUnreachable
from tradebot.providers.ratelimit import RETRY_STATUSES, retry_delay
from tradebot.providers.registry import ALPACA_VENUE
from tradebot.providers.ticks import parse_rfc3339

log = logging.getLogger(__name__)
LIVE_TRADING_URL = "https://api.alpaca.markets"
LIVE_TRADING_STREAM_URL = "wss://api.alpaca.markets/stream"
CREDENTIALS = "/".join(ALPACA_VENUE.credentials)
ACTIVITY_PAGE = 100  # the most Alpaca returns per page of account activities
CANCEL_WAIT = 10.0  # seconds a cancel may take before Alpaca reports the order final


def endpoints(settings: Settings) -> tuple[str, str]:
    """(REST, stream) URLs: paper unless ALPACA_LIVE_TRADING, which swaps the paper defaults for live."""
    rest, stream = settings.alpaca_trading_url, settings.alpaca_trading_stream_url
    if settings.alpaca_live_trading:
        rest = LIVE_TRADING_URL if rest == PAPER_TRADING_URL else rest
        stream = LIVE_TRADING_STREAM_URL if stream == PAPER_TRADING_STREAM_URL else stream
    return rest, stream


def _number(value: Any) -> float:
    return float(value) if value not in (None, "") else 0.0


def order_of(order: SdkOrder) -> BrokerOrder:
    """An SDK order in our words (pure)."""
    kind = order.order_type or order.type
    return BrokerOrder(
        id=str(order.id),
        client_order_id=order.client_order_id,
        symbol=order.symbol or "",
        side=Side(order.side.value if order.side else "buy"),
        status=order.status.value,
        quantity=_number(order.qty),
        filled_quantity=_number(order.filled_qty),
        filled_average_price=_number(order.filled_avg_price) or None,
        order_type=kind.value if kind else "market",
        time=order.submitted_at or order.created_at,
        legs=tuple(order_of(leg) for leg in order.legs or ()),
    )


def update_of(update: TradeUpdate) -> BrokerUpdate:
    """A trade_updates event in our words; fills carry their execution (pure)."""
    order = order_of(update.order)
    event = update.event.value if hasattr(update.event, "value") else str(update.event)
    fill = None
    if event in FILL_EVENTS and update.price and update.qty:
        fill = BrokerFill(order.id, order.symbol, order.side, float(update.qty), order.filled_quantity,
                          float(update.price), update.timestamp)  # fmt: skip
    return BrokerUpdate(event, order, update.timestamp, fill)


def activity_fill(raw: dict[str, Any]) -> BrokerFill:
    """A FILL account activity (REST) in our words (pure)."""
    return BrokerFill(
        order_id=str(raw["order_id"]),
        symbol=str(raw["symbol"]),
        side=Side.SELL if str(raw["side"]).startswith("sell") else Side.BUY,  # sell, sell_short
        quantity=float(raw["qty"]),
        cumulative=float(raw["cum_qty"]),
        price=float(raw["price"]),
        time=parse_rfc3339(str(raw["transaction_time"])),
    )


def position_of(position: SdkPosition) -> BrokerPosition:
    return BrokerPosition(
        symbol=position.symbol,
        quantity=_number(position.qty),
        average_price=_number(position.avg_entry_price),
        market_price=_number(position.current_price),
    )


def order_request(intent: OrderIntent) -> MarketOrderRequest | LimitOrderRequest:
    """The SDK request of an intent: market or limit, a bracket when it carries exits (pure)."""
    fields: dict[str, Any] = {
        "symbol": intent.symbol,
        "qty": intent.quantity,
        "side": OrderSide(intent.side.value),
        "time_in_force": TimeInForce.DAY,
        "client_order_id": intent.client_order_id,
    }
    if intent.stop_loss is not None or intent.take_profit is not None:
        both = intent.stop_loss is not None and intent.take_profit is not None
        fields["order_class"] = OrderClass.BRACKET if both else OrderClass.OTO
        if intent.stop_loss is not None:
            fields["stop_loss"] = StopLossRequest(stop_price=intent.stop_loss)
        if intent.take_profit is not None:
            fields["take_profit"] = TakeProfitRequest(limit_price=intent.take_profit)
    if intent.order_type == "limit":
        return LimitOrderRequest(limit_price=intent.limit_price, **fields)
    return MarketOrderRequest(**fields)


def _answer(error: APIError) -> str:
    try:
        return str(error.message)
    except (ValueError, KeyError, TypeError):
        return str(error)[:300]


class _Client(TradingClient):
    """The SDK's client with its own 429 retries off (`_call` honours Retry-After instead)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._retry = 0


class _Stream(TradingStream):
    """The SDK's trade_updates stream, telling us when Alpaca acknowledged the listen."""

    on_listening: Callable[[], None]
    on_malformed: Callable[[str], None]

    async def _dispatch(self, msg: dict[str, Any]) -> None:
        if msg.get("stream") == "listening" and "trade_updates" in (msg.get("data") or {}).get("streams", ()):
            self.on_listening()
        try:
            await super()._dispatch(msg)
        except (ValidationError, TypeError, ValueError) as error:  # one bad event: skip it, keep the stream
            self.on_malformed(f"Alpaca trade update not usable: {error}")


class AlpacaTrading:
    """Alpaca as a `Venue` (tradebot.execution.venue)."""

    name = "alpaca"

    def __init__(self, settings: Settings) -> None:
        self.key, self.secret = reveal(settings.alpaca_key), reveal(settings.alpaca_secret)
        self.live = settings.alpaca_live_trading
        self.rest_url, self.stream_url = endpoints(settings)
        self.description = (
            f"Alpaca {'LIVE (real money)' if self.live else 'paper'} account at {self.rest_url}"
        )
        self.stats: Counter[str] = Counter()

    @cached_property
    def client(self) -> TradingClient:
        """Made on first use: the SDK refuses to make one without keys (the service checks them first)."""
        return _Client(self.key, self.secret, paper=not self.live, url_override=self.rest_url)

    async def _call(self, function: Callable[..., Any], *args: Any) -> Any:
        """One SDK call in a thread; 429s wait as Alpaca asks, 5xx and network errors are retried."""
        failures, limited, waited = 0, 0, 0.0
        while True:
            self.stats["requests"] += 1
            try:
                return await asyncio.to_thread(function, *args)
            except APIError as error:
                status = error.status_code or 0
                headers = error.response.headers if error.response is not None else {}
                if status == 429:
                    limited += 1
                    self.stats["rate_limited"] += 1
                    wait = retry_delay(headers, limited, time.time())
                    waited += wait
                    if waited > RATE_LIMIT_PATIENCE:
                        raise ProviderError("Alpaca", status, _answer(error)) from None
                elif status in RETRY_STATUSES and failures + 1 < MAX_ATTEMPTS:
                    failures += 1
                    wait = retry_delay(headers, failures, time.time())
                else:
                    raise
            except requests.RequestException as error:
                failures += 1
                if failures >= MAX_ATTEMPTS:
                    reason = f"{type(error).__name__}: {error}"
                    raise ProviderUnreachable("Alpaca", self.rest_url, reason, failures) from None
                wait = retry_delay({}, failures, time.time())
            self.stats["retries"] += 1
            log.info(
                "Alpaca asked us to wait", extra={"wait": round(wait, 3), "retries": self.stats["retries"]}
            )
            await asyncio.sleep(wait)

    def _refused(self, error: APIError) -> Exception:
        """A 401 (or 403 outside an order) is our key; other refusals keep Alpaca's words."""
        status = error.status_code
        return VenueRejected(f"Alpaca rejected {CREDENTIALS} (HTTP {status}: {_answer(error)})")

    async def account(self) -> BrokerAccount:
        try:
            account: TradeAccount = await self._call(self.client.get_account)
        except APIError as error:
            if error.status_code in (401, 403):
                raise self._refused(error) from None
            raise ProviderError("Alpaca", error.status_code or 0, _answer(error)) from None
        blocked = bool(account.trading_blocked or account.account_blocked)
        return BrokerAccount(_number(account.cash), _number(account.equity), account.status.value, blocked)

    async def submit(self, intent: OrderIntent) -> BrokerOrder:
        try:
            placed: SdkOrder = await self._call(self.client.submit_order, order_request(intent))
            return order_of(placed)
        except APIError as error:
            answer = _answer(error)
            if error.status_code == 422 and "client_order_id" in answer and "unique" in answer:
                existing = await self.order_by_client_id(intent.client_order_id)
                self.stats["duplicate_submits"] += 1
                log.info("order already placed at Alpaca", extra={"client_order_id": intent.client_order_id})
                return existing
            if error.status_code == 401:
                raise self._refused(error) from None
            if error.status_code in (403, 422):
                raise OrderRefused(f"Alpaca refused the order (HTTP {error.status_code}: {answer})") from None
            raise ProviderError("Alpaca", error.status_code or 0, answer) from None

    async def _read(self, function: Callable[..., Any], *args: Any) -> Any:
        try:
            return await self._call(function, *args)
        except APIError as error:
            if error.status_code == 401:
                raise self._refused(error) from None
            raise ProviderError("Alpaca", error.status_code or 0, _answer(error)) from None

    async def order_by_client_id(self, client_order_id: str) -> BrokerOrder:
        return order_of(await self._read(self.client.get_order_by_client_id, client_order_id))

    async def order(self, order_id: str) -> BrokerOrder:
        return order_of(await self._read(self.client.get_order_by_id, order_id))

    async def cancel(self, order_id: str) -> BrokerOrder:
        try:
            await self._call(self.client.cancel_order_by_id, order_id)
        except APIError as error:
            if error.status_code != 422:  # 422: already final (filled, canceled)
                raise ProviderError("Alpaca", error.status_code or 0, _answer(error)) from None
        deadline = time.monotonic() + CANCEL_WAIT
        # Alpaca announces the end only on trade_updates, which the service reads: poll REST here
        while (order := await self.order(order_id)).is_open and time.monotonic() < deadline:  # noqa: ASYNC110
            await asyncio.sleep(0.2)
        return order

    async def open_orders(self) -> list[BrokerOrder]:
        query = GetOrdersRequest(status=QueryOrderStatus.OPEN, nested=True, limit=500)
        orders: list[SdkOrder] = await self._read(self.client.get_orders, query)
        return [order_of(o) for o in orders]

    async def positions(self) -> list[BrokerPosition]:
        found: list[SdkPosition] = await self._read(self.client.get_all_positions)
        return [position_of(p) for p in found]

    async def fills_since(self, moment: datetime) -> list[BrokerFill]:
        """FILL activities after `moment`, oldest first, following Alpaca's page tokens."""
        fills: list[BrokerFill] = []
        params: dict[str, Any] = {"after": moment.isoformat(), "direction": "asc", "page_size": ACTIVITY_PAGE}
        while True:
            page = await self._read(self.client.get, "/account/activities/FILL", params)
            fills.extend(activity_fill(raw) for raw in page or ())
            if not page or len(page) < ACTIVITY_PAGE:
                return fills
            params = {**params, "page_token": page[-1]["id"]}

    async def stream(
        self,
        on_update: Callable[[BrokerUpdate], None],
        on_listening: Callable[[], None],
        on_malformed: Callable[[str], None],
    ) -> None:
        socket = {"ping_interval": 10, "ping_timeout": 20, "max_queue": 1024}
        stream = _Stream(
            self.key, self.secret, paper=not self.live, url_override=self.stream_url, websocket_params=socket
        )
        stream.on_listening, stream.on_malformed = on_listening, on_malformed

        async def handle(update: TradeUpdate) -> None:
            on_update(update_of(update))

        stream.subscribe_trade_updates(handle)
        try:
            try:
                await stream._start_ws()
            except ValueError as error:  # the SDK's words for an "unauthorized" answer
                raise VenueRejected(f"Alpaca rejected {CREDENTIALS} on trade_updates: {error}") from None
            await stream._consume()
        finally:
            await stream.close()
