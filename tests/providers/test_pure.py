"""The pure parts: event -> tick conversion, timestamps, pagination and rate-limit arithmetic."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime
from email.utils import format_datetime

import msgpack
from alpaca.data.models import Bar, Quote, Trade
from polygon.websocket.models import EquityAgg, EquityQuote, EquityTrade

from tradebot.providers.alpaca import history as alpaca_rest
from tradebot.providers.alpaca import stream as alpaca
from tradebot.providers.polygon import history as polygon_rest
from tradebot.providers.polygon import stream as polygon
from tradebot.providers.ratelimit import MAX_WAIT, Pacer, header_wait, retry_delay
from tradebot.providers.ticks import from_unix_ns, parse_rfc3339

MOMENT = datetime(2024, 1, 2, 14, 30, 0, 123456, tzinfo=UTC)


def test_timestamps_agree_across_transports():
    assert parse_rfc3339("2024-01-02T14:30:00.123456789Z") == MOMENT
    assert parse_rfc3339("2024-01-02T09:30:00.123456-05:00") == MOMENT
    assert from_unix_ns(int(MOMENT.timestamp()) * 10**9 + 123_456_999) == MOMENT
    stamp = msgpack.Timestamp(int(MOMENT.timestamp()), 123_456_789)
    assert stamp.to_datetime() == MOMENT, "the SDK's WebSocket time and our REST parsing floor alike"


def test_alpaca_events_become_ticks_with_stable_ids():
    raw = {"T": "t", "S": "AAPL", "i": 42, "x": "V", "p": 190.5, "s": 10, "t": MOMENT, "c": ["@"], "z": "C"}
    trade = alpaca.tick_of(Trade("AAPL", raw))
    rest = alpaca_rest.trade_from(
        "AAPL", {"t": "2024-01-02T14:30:00.123456789Z", "p": 190.5, "s": 10, "i": 42}
    )
    assert trade == rest and trade.id == "t42" and trade.source == "alpaca"
    quote = alpaca.tick_of(
        Quote(
            "AAPL",
            {
                "S": "AAPL",
                "bp": 190.0,
                "ap": 191.0,
                "bs": 1,
                "as": 2,
                "t": MOMENT,
                "bx": "V",
                "ax": "V",
                "c": [],
                "z": "C",
            },
        )
    )
    assert quote.price == 190.5 and (quote.bid, quote.ask, quote.size) == (190.0, 191.0, 0)
    bar = alpaca.tick_of(
        Bar(
            "AAPL",
            {"S": "AAPL", "o": 1, "h": 2, "l": 0.5, "c": 1.5, "v": 900, "t": MOMENT, "n": 9, "vw": 1.2},
        )
    )
    seconds = int(MOMENT.timestamp())
    assert (bar.id, bar.price, bar.volume, bar.size, bar.type) == (f"b1m{seconds}", 1.5, 900, 0, "bar")
    # Ids never collide: a quote without a sequence number is named by its time (issue 11).
    assert quote.id == f"q{int(MOMENT.timestamp() * 1_000_000)}" and quote.type == "quote"


def test_polygon_events_become_ticks_with_stable_ids():
    millis = int(MOMENT.timestamp() * 1000)
    trade = polygon.tick_of(
        EquityTrade.from_dict({"ev": "T", "sym": "MSFT", "p": 400.0, "s": 5, "t": millis, "q": 777, "i": "x"})
    )
    rest = polygon_rest.trade_from(
        "MSFT", {"sip_timestamp": millis * 10**6 + 999, "price": 400.0, "size": 5, "sequence_number": 777}
    )
    assert trade == rest and trade.id == "t777"
    quote = polygon.tick_of(
        EquityQuote.from_dict({"ev": "Q", "sym": "MSFT", "bp": 399.0, "ap": 401.0, "t": millis, "q": 5})
    )
    assert quote.price == 400.0 and quote.id == "q5"
    one_sided = polygon.tick_of(
        EquityQuote.from_dict({"ev": "Q", "sym": "MSFT", "bp": 0, "ap": 401.0, "t": millis, "q": 6})
    )
    assert one_sided is None
    minute = polygon.tick_of(EquityAgg.from_dict({"ev": "AM", "sym": "MSFT", "c": 3.0, "v": 10, "s": millis}))
    second = polygon.tick_of(EquityAgg.from_dict({"ev": "A", "sym": "MSFT", "c": 3.0, "v": 10, "s": millis}))
    assert minute.id == f"b1m{millis // 1000}" and minute.type == "bar" and second is None


def test_pagination_steps():
    first = ("/v2/stocks/AAPL/bars", {"start": "a", "limit": 10})
    assert alpaca_rest.next_request(first, {"bars": [], "next_page_token": "abc"}) == (
        "/v2/stocks/AAPL/bars",
        {"start": "a", "limit": 10, "page_token": "abc"},
    )
    assert alpaca_rest.next_request(first, {"bars": [], "next_page_token": None}) is None
    assert polygon_rest.next_request({"next_url": "https://x/v3/trades/A?cursor=c"}) == (
        "https://x/v3/trades/A?cursor=c",
        None,
    )
    assert polygon_rest.next_request({"results": []}) is None


def test_provider_answers_are_explained():
    assert "'auth failed' (402)" in str(alpaca.rejection("auth failed"))
    assert "ALPACA_KEY/ALPACA_SECRET" in str(alpaca.rejection("auth failed"))
    assert "another client" in str(alpaca.rejection("connection limit exceeded"))
    assert polygon.client_endpoint("wss://socket.polygon.io") == ("socket.polygon.io", True)
    assert polygon.client_endpoint("ws://127.0.0.1:9000/") == ("127.0.0.1:9000", False)
    assert polygon.subscriptions(["A"]) == ["T.A", "Q.A", "AM.A"]


def test_rate_limit_headers():
    now = 1_000_000.0
    assert header_wait({"retry-after": "3"}, now) == 3.0
    assert (
        header_wait({"retry-after": format_datetime(datetime.fromtimestamp(now + 5, UTC), usegmt=True)}, now)
        == 5.0
    )
    assert header_wait({"x-ratelimit-remaining": "0", "x-ratelimit-reset": str(now + 7)}, now) == 7.0
    assert header_wait({"x-ratelimit-remaining": "12", "x-ratelimit-reset": str(now + 7)}, now) is None
    assert header_wait({}, now) is None
    assert [retry_delay({}, attempt, now) for attempt in (1, 2, 3)] == [0.5, 1.0, 2.0]
    assert retry_delay({"retry-after": "99999"}, 1, now) == MAX_WAIT


async def test_pacer_keeps_to_concurrency_over_delay():
    pacer = Pacer(concurrency=2, delay=0.1)
    began = time.monotonic()

    async def request() -> None:
        async with pacer:
            pass

    await asyncio.gather(*(request() for _ in range(8)))
    assert time.monotonic() - began >= 0.39, "8 requests, 2 slots, 0.1 s rest each: at least 0.4 s"
    pacer.hold(0.2)
    held = time.monotonic()
    await request()
    assert time.monotonic() - held >= 0.19
