"""Polygon REST: minute aggregates (v2/aggs) and trades (v3/trades) of one symbol, via next_url."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from datetime import datetime
from typing import Any

from tradebot.common.settings import Settings, reveal
from tradebot.providers.history import Bar, Kind, Request, Row, paginate
from tradebot.providers.http import MAX_ATTEMPTS, ProviderHTTP
from tradebot.providers.ratelimit import Pacer
from tradebot.providers.registry import POLYGON
from tradebot.providers.ticks import from_unix_ms, trade_tick

PAGE_LIMIT = 50_000
SOURCE = POLYGON.name


def millis(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


def bar_from(symbol: str, raw: dict[str, Any]) -> Bar:
    return Bar(
        from_unix_ms(raw["t"]), symbol, raw["o"], raw["h"], raw["l"], raw["c"], raw["v"], raw.get("n", 0)
    )


def trade_from(symbol: str, raw: dict[str, Any]) -> Row:
    """Timestamps are kept to the millisecond, as the WebSocket sends them, so both agree."""
    moment = from_unix_ms(raw["sip_timestamp"] // 1_000_000)
    return trade_tick(SOURCE, symbol, moment, raw["price"], raw["size"], raw["sequence_number"])


def next_request(body: dict[str, Any]) -> Request | None:
    """Polygon's `next_url` is complete (cursor included); the API key travels in a header."""
    url = body.get("next_url")
    return (url, None) if url else None


class PolygonHistory:
    name = SOURCE

    def __init__(self, settings: Settings, pacer: Pacer, attempts: int = MAX_ATTEMPTS) -> None:
        self.http = ProviderHTTP(
            "Polygon",
            settings.polygon_rest_url,
            {"Authorization": f"Bearer {reveal(settings.polygon_api_key)}"},
            "/".join(POLYGON.credentials),
            pacer,
            attempts=attempts,
        )

    def pages(self, kind: Kind, symbol: str, start: datetime, end: datetime) -> AsyncIterator[list[Row]]:
        if kind == "bars":
            url = f"/v2/aggs/ticker/{symbol}/range/1/minute/{millis(start)}/{millis(end) - 1}"
            params: dict[str, Any] = {"adjusted": "true", "sort": "asc", "limit": PAGE_LIMIT}
            convert: Callable[[str, dict[str, Any]], Row] = bar_from
        else:
            url = f"/v3/trades/{symbol}"
            params = {"timestamp.gte": millis(start) * 1_000_000, "timestamp.lt": millis(end) * 1_000_000,
                      "order": "asc", "sort": "timestamp", "limit": PAGE_LIMIT}  # fmt: skip
            convert = trade_from
        return paginate(
            self.http,
            (url, params),
            lambda body: [convert(symbol, raw) for raw in body.get("results") or ()],
            next_request,
        )
