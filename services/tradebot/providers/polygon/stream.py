"""Polygon's stocks WebSocket through polygon-api-client's WebSocketClient.

`WebSocketClient.connect(processor)` is a coroutine: it authenticates (raising
AuthError with Polygon's message), subscribes and calls us with each frame; we
take frames raw to read the status messages (subscription acknowledgements, the
connection limit), then parse the events with the SDK's own parser. A frame we
cannot read is reported and skipped; the connection goes on.
With `max_reconnects=0` a dropped socket ends it with the error, so reconnects,
resubscription and gap fills are the shared loop's, the same as for Alpaca.
POLYGON_WS_URL's host becomes the client's `feed`, its scheme `secure`.
"""

from __future__ import annotations

import json
import logging
from typing import Any
from urllib.parse import urlsplit

from polygon.exceptions import AuthError
from polygon.websocket import WebSocketClient
from polygon.websocket.models import Market, parse
from websockets.exceptions import ConnectionClosedError

from tradebot.common.models import PriceTick
from tradebot.common.settings import Settings, reveal
from tradebot.providers.feed import FeedEvents, FeedRejected
from tradebot.providers.registry import POLYGON
from tradebot.providers.ticks import bar_tick, from_unix_ms, quote_tick, trade_tick

SOURCE = POLYGON.name
log = logging.getLogger(__name__)
CHANNELS = ("T", "Q", "AM")
POLICY_VIOLATION = 1008  # how Polygon closes a connection over the account's limit


def subscriptions(symbols: list[str]) -> list[str]:
    return [f"{channel}.{symbol}" for symbol in symbols for channel in CHANNELS]


def client_endpoint(url: str) -> tuple[str, bool]:
    """'wss://socket.polygon.io' -> ('socket.polygon.io', True): the SDK's feed and secure flag."""
    parts = urlsplit(url)
    return parts.netloc + parts.path.rstrip("/"), parts.scheme == "wss"


def tick_of(event: Any) -> PriceTick | None:
    """An SDK EquityTrade, EquityQuote or EquityAgg (AM) as a tick (pure)."""
    kind = type(event).__name__
    if kind == "EquityTrade":
        moment = from_unix_ms(event.timestamp)
        return trade_tick(SOURCE, event.symbol, moment, event.price, event.size, event.sequence_number)
    if kind == "EquityQuote":
        moment = from_unix_ms(event.timestamp)
        return quote_tick(
            SOURCE, event.symbol, moment, event.bid_price, event.ask_price, event.sequence_number
        )
    if kind == "EquityAgg" and event.event_type == "AM":
        return bar_tick(SOURCE, event.symbol, from_unix_ms(event.start_timestamp), event.close, event.volume)
    return None


def read_frame(frame: str | bytes) -> list[dict[str, Any]]:
    """A frame's messages; ValueError when it is not a JSON list of objects (pure)."""
    messages = json.loads(frame)
    if not isinstance(messages, list) or not all(isinstance(m, dict) for m in messages):
        raise ValueError("not a JSON list of messages")
    return messages


class PolygonFeed:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    async def stream(self, symbols: list[str], events: FeedEvents) -> None:
        feed, secure = client_endpoint(self.settings.polygon_ws_url)
        client = WebSocketClient(
            api_key=reveal(self.settings.polygon_api_key),
            feed=feed,
            market="stocks",
            secure=secure,
            subscriptions=subscriptions(symbols),
            max_reconnects=0,
            raw=True,  # to see the status messages; events still go through the SDK's parser
        )

        async def process(frame: str | bytes) -> None:
            try:
                messages = read_frame(frame)
            except ValueError as error:
                events.malformed(f"Polygon frame not readable ({error}): {str(frame)[:120]!r}")
                return
            for status in (m for m in messages if m.get("ev") == "status"):
                if status.get("status") == "max_connections":
                    raise FeedRejected(
                        f"Polygon refused the connection: {status.get('message')!r}; another client is"
                        " using POLYGON_API_KEY"
                    )
                if status.get("status") == "success" and "subscribed" in str(status.get("message")):
                    events.live()
            for message in messages:
                try:  # one message at a time: a bad one is skipped, the rest of the frame is kept
                    ticks = [tick_of(event) for event in parse([message], log, Market.Stocks)]
                except (AttributeError, KeyError, TypeError, ValueError) as error:
                    events.malformed(f"Polygon {message.get('ev')!r} event not usable: {error}")
                    continue
                for tick in ticks:
                    if tick is not None:
                        events.tick(tick)

        try:
            await client.connect(process)
        except AuthError as error:
            raise FeedRejected(f"Polygon rejected POLYGON_API_KEY: {error}") from None
        except ConnectionClosedError as error:
            if error.rcvd is not None and error.rcvd.code == POLICY_VIOLATION:
                raise FeedRejected(
                    f"Polygon closed the connection ({POLICY_VIOLATION} {error.rcvd.reason!r}): over the"
                    " account's connection limit; another client is using POLYGON_API_KEY"
                ) from None
            raise
        finally:
            if client.websocket is not None:
                await client.close()
