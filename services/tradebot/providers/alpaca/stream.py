"""Alpaca's market-data WebSocket through alpaca-py's StockDataStream.

The SDK's `_run_forever` reconnects on its own and only logs why, so a rejected
key or subscription would look like a quiet feed. We drive one connection at a
time with the SDK's own steps — `_start_ws` (connect + auth),
`_send_subscribe_msg`, `_consume` — and read its control frames ourselves: the
feed is live only once Alpaca acknowledges the subscription, and an error frame
(auth failed, symbol or connection limit, insufficient subscription) ends the
connection with Alpaca's words instead of being logged and ignored.
"""

from __future__ import annotations

from typing import Any

from alpaca.data.enums import DataFeed
from alpaca.data.live import StockDataStream

from tradebot.common.models import PriceTick
from tradebot.common.settings import Settings, reveal
from tradebot.providers.feed import FeedEvents, FeedRejected
from tradebot.providers.registry import ALPACA
from tradebot.providers.ticks import bar_tick, quote_tick, trade_tick

SOURCE = ALPACA.name
CREDENTIALS = "/".join(ALPACA.credentials)
# The stream's documented error codes (Alpaca market-data streaming docs), by their message.
ERROR_CODES = {
    "invalid syntax": 400,
    "not authenticated": 401,
    "auth failed": 402,
    "already authenticated": 403,
    "auth timeout": 404,
    "symbol limit exceeded": 405,
    "connection limit exceeded": 406,
    "slow client": 407,
    "v2 not enabled": 408,
    "insufficient subscription": 409,
    "invalid subscribe action": 410,
    "internal error": 500,
}
# Codes that retrying soon won't cure: the account or the configuration must change first.
REFUSALS = {402: CREDENTIALS, 405: "MAX_WEBSOCKET_SYMBOLS", 406: CREDENTIALS, 408: CREDENTIALS,
            409: "ALPACA_FEED"}  # fmt: skip


class AlpacaStreamError(RuntimeError):
    """An error frame that a reconnect may cure (slow client, internal error, ...)."""


def rejection(answer: str, code: int | None = None) -> FeedRejected:
    """The provider's answer, with its code and the variable the operator should look at."""
    code = code or ERROR_CODES.get(answer.strip().lower())
    said = f"{answer!r} ({code})" if code else repr(answer)
    if code == 406:
        return FeedRejected(f"Alpaca refused the connection: {said}; another client is using {CREDENTIALS}")
    if code == 405:
        return FeedRejected(f"Alpaca refused the subscription: {said}; lower MAX_WEBSOCKET_SYMBOLS")
    if code == 409:
        return FeedRejected(f"Alpaca refused the subscription: {said}; check ALPACA_FEED (iex or sip)")
    return FeedRejected(f"Alpaca rejected {CREDENTIALS}: {said}")


def control_frame_error(message: dict[str, Any]) -> Exception:
    """What an error frame means for the connection (pure)."""
    text = str(message.get("msg", "error"))
    code = message.get("code")
    code = code if isinstance(code, int) else ERROR_CODES.get(text.strip().lower())
    if code in REFUSALS:
        return rejection(text, code)
    return AlpacaStreamError(f"Alpaca stream error {text!r} ({code})")


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


class _Stream(StockDataStream):
    """The SDK's stream, with its control frames reported instead of only logged."""

    events: FeedEvents

    async def _dispatch(self, msg: dict[str, Any]) -> None:
        kind = msg.get("T")
        if kind == "subscription":
            self.events.live()
        elif kind == "error":
            raise control_frame_error(msg)
        else:
            await super()._dispatch(msg)


class AlpacaFeed:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    async def stream(self, symbols: list[str], events: FeedEvents) -> None:
        stream = _Stream(
            reveal(self.settings.alpaca_key),
            reveal(self.settings.alpaca_secret),
            feed=DataFeed(self.settings.alpaca_feed),
            url_override=self.settings.alpaca_stream_url,
            websocket_params={"ping_interval": 10, "ping_timeout": 20, "max_queue": 1024},
        )
        stream.events = events

        async def handle(event: Any) -> None:
            try:
                tick = tick_of(event)
            except ValueError as error:  # a field out of range: skip the event, keep the feed
                events.malformed(f"Alpaca {type(event).__name__} not usable: {error}")
                return
            if tick is not None:
                events.tick(tick)

        stream.subscribe_trades(handle, *symbols)
        stream.subscribe_quotes(handle, *symbols)
        stream.subscribe_bars(handle, *symbols)
        try:
            try:
                await stream._start_ws()
            except ValueError as error:  # the SDK raises the error frame's message
                raise rejection(str(error)) from None
            await stream._send_subscribe_msg()
            await stream._consume()
        finally:
            await stream.close()
