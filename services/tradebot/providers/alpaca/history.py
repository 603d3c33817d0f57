"""Alpaca market-data REST v2: 1-minute bars and trades of one symbol, following page tokens."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import datetime
from typing import Any

from tradebot.common.settings import Settings, reveal
from tradebot.providers.history import Bar, Kind, Request, Row, paginate
from tradebot.providers.http import MAX_ATTEMPTS, ProviderHTTP
from tradebot.providers.ratelimit import Pacer
from tradebot.providers.registry import ALPACA
from tradebot.providers.ticks import parse_rfc3339, to_rfc3339, trade_tick

PAGE_LIMIT = 10_000
SOURCE = ALPACA.name


def bar_from(symbol: str, raw: dict[str, Any]) -> Bar:
    return Bar(
        parse_rfc3339(raw["t"]), symbol, raw["o"], raw["h"], raw["l"], raw["c"], raw["v"], raw.get("n", 0)
    )


def trade_from(symbol: str, raw: dict[str, Any]) -> Row:
    return trade_tick(SOURCE, symbol, parse_rfc3339(raw["t"]), raw["p"], raw["s"], raw["i"])


def next_request(first: Request, body: dict[str, Any]) -> Request | None:
    """The same request with the page token of the answer, or None on the last page."""
    token = body.get("next_page_token")
    if not token:
        return None
    url, params = first
    return url, {**(params or {}), "page_token": token}


class AlpacaHistory:
    name = SOURCE

    def __init__(self, settings: Settings, pacer: Pacer, attempts: int = MAX_ATTEMPTS) -> None:
        self.feed = settings.alpaca_feed
        self.http = ProviderHTTP(
            "Alpaca",
            settings.alpaca_data_url,
            {
                "APCA-API-KEY-ID": reveal(settings.alpaca_key),
                "APCA-API-SECRET-KEY": reveal(settings.alpaca_secret),
            },
            "/".join(ALPACA.credentials),
            pacer,
            attempts=attempts,
        )

    def pages(self, kind: Kind, symbol: str, start: datetime, end: datetime) -> AsyncIterator[list[Row]]:
        params = {"start": to_rfc3339(start), "end": to_rfc3339(end), "limit": PAGE_LIMIT,
                  "feed": self.feed, "sort": "asc"}  # fmt: skip
        if kind == "bars":
            params |= {"timeframe": "1Min", "adjustment": "raw"}
        first: Request = (f"/v2/stocks/{symbol}/{kind}", params)
        convert = bar_from if kind == "bars" else trade_from
        return paginate(
            self.http,
            first,
            lambda body: [convert(symbol, raw) for raw in body.get(kind) or ()],
            lambda body: next_request(first, body),
        )
