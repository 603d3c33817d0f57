"""`polygon_market_data`: Polygon's stocks WebSocket through polygon-api-client's WebSocketClient.

`WebSocketClient.connect(processor)` is a coroutine: it authenticates (raising
AuthError with Polygon's message), subscribes and calls us with each frame; we
take it raw to see the subscription acknowledgement, then parse the events with
the SDK's own parser.
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

from tradebot.backfill.polygon_rest import PolygonHistory
from tradebot.backfill.ratelimit import Pacer
from tradebot.backfill.sources import credentials_problem
from tradebot.common.models import PriceTick
from tradebot.common.settings import Settings
from tradebot.market_data.providers_stream import FeedRejected, Live, ProviderStreamService, Sink
from tradebot.market_data.providers_ticks import bar_tick, from_unix_ms, quote_tick, trade_tick

SOURCE = "polygon"
log = logging.getLogger(__name__)
CHANNELS = ("T", "Q", "AM")


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


class PolygonFeed:
    source = SOURCE

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    def credentials_problem(self) -> str | None:
        return credentials_problem(SOURCE, self.settings)

    async def stream(self, symbols: list[str], sink: Sink, live: Live) -> None:
        feed, secure = client_endpoint(self.settings.polygon_ws_url)
        client = WebSocketClient(
            api_key=self.settings.polygon_api_key,
            feed=feed,
            market="stocks",
            secure=secure,
            subscriptions=subscriptions(symbols),
            max_reconnects=0,
            raw=True,  # to see the subscription acknowledgements; events still go through the SDK's parser
        )

        async def process(frame: str | bytes) -> None:
            messages = json.loads(frame)
            if any(m.get("ev") == "status" and m.get("status") == "success" for m in messages):
                live()
            for event in parse(messages, log, Market.Stocks):
                tick = tick_of(event)
                if tick is not None:
                    sink(tick)

        try:
            await client.connect(process)
        except AuthError as error:
            raise FeedRejected(f"Polygon rejected POLYGON_API_KEY: {error}") from None
        finally:
            if client.websocket is not None:
                await client.close()

    def history(self, pacer: Pacer) -> PolygonHistory:
        return PolygonHistory(self.settings, pacer)


class PolygonMarketDataService(ProviderStreamService):
    service_id = "polygon_market_data"

    def make_feed(self, settings: Settings) -> PolygonFeed:
        return PolygonFeed(settings)
