"""`alpaca_market_data`: Alpaca's market-data WebSocket through alpaca-py's StockDataStream.

The SDK's `_run_forever` reconnects on its own and only logs why, so a rejected
key would look like a quiet feed. We drive one connection at a time with the
SDK's own steps instead — `_start_ws` (connect + auth), `_send_subscribe_msg`,
`_consume` — so a drop reaches the shared reconnect/gap-fill loop and the
provider's error frame ("auth failed", "connection limit exceeded") reaches the
heartbeat verbatim.
"""

from __future__ import annotations

from typing import Any

from alpaca.data.enums import DataFeed
from alpaca.data.live import StockDataStream

from tradebot.backfill.alpaca_rest import AlpacaHistory
from tradebot.backfill.ratelimit import Pacer
from tradebot.backfill.sources import credentials_problem
from tradebot.common.models import PriceTick
from tradebot.common.settings import Settings
from tradebot.market_data.providers_stream import FeedRejected, Live, ProviderStreamService, Sink
from tradebot.market_data.providers_ticks import bar_tick, quote_tick, trade_tick

SOURCE = "alpaca"
CREDENTIALS = "ALPACA_KEY/ALPACA_SECRET"
# The stream's documented error codes, by the message the SDK raises with.
ERROR_CODES = {
    "auth failed": 402,
    "auth timeout": 404,
    "not authenticated": 401,
    "symbol limit exceeded": 405,
    "connection limit exceeded": 406,
    "slow client": 407,
    "insufficient subscription": 409,
}


def rejection(answer: str) -> FeedRejected:
    """The provider's answer, with its code and what the operator should look at."""
    code = ERROR_CODES.get(answer.strip().lower())
    said = f"{answer!r} ({code})" if code else repr(answer)
    if code == 406:
        return FeedRejected(f"Alpaca refused the connection: {said}; another client is using {CREDENTIALS}")
    return FeedRejected(f"Alpaca rejected {CREDENTIALS}: {said}")


def tick_of(event: Any) -> PriceTick | None:
    """An SDK Trade, Quote or Bar model as a tick (pure)."""
    kind = type(event).__name__
    if kind == "Trade":
        return trade_tick(SOURCE, event.symbol, event.timestamp, event.price, event.size, event.id)
    if kind == "Quote":
        return quote_tick(SOURCE, event.symbol, event.timestamp, event.bid_price, event.ask_price)
    if kind == "Bar":
        return bar_tick(SOURCE, event.symbol, event.timestamp, event.close, event.volume)
    return None


class AlpacaFeed:
    source = SOURCE

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    def credentials_problem(self) -> str | None:
        return credentials_problem(SOURCE, self.settings)

    async def stream(self, symbols: list[str], sink: Sink, live: Live) -> None:
        stream = StockDataStream(
            self.settings.alpaca_key or "",
            self.settings.alpaca_secret or "",
            feed=DataFeed(self.settings.alpaca_feed),
            url_override=self.settings.alpaca_stream_url,
            websocket_params={"ping_interval": 10, "ping_timeout": 20, "max_queue": 1024},
        )

        async def handle(event: Any) -> None:
            tick = tick_of(event)
            if tick is not None:
                sink(tick)

        stream.subscribe_trades(handle, *symbols)
        stream.subscribe_quotes(handle, *symbols)
        stream.subscribe_bars(handle, *symbols)
        try:
            try:
                await stream._start_ws()
            except ValueError as error:  # the SDK raises the error frame's message
                raise rejection(str(error)) from None
            await stream._send_subscribe_msg()
            live()
            await stream._consume()
        finally:
            await stream.close()

    def history(self, pacer: Pacer) -> AlpacaHistory:
        return AlpacaHistory(self.settings, pacer)


class AlpacaMarketDataService(ProviderStreamService):
    service_id = "alpaca_market_data"

    def make_feed(self, settings: Settings) -> AlpacaFeed:
        return AlpacaFeed(settings)
