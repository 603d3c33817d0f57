"""The history API against real PostgreSQL: every answer and every rejection."""

from __future__ import annotations

from datetime import timedelta

import pytest

from api.known_history import START, STEP, SYMBOLS, TICKS_PER_SYMBOL

pytestmark = pytest.mark.integration
BARS = "/sources/synthetic/symbols/AAPL/bars"
END = START + TICKS_PER_SYMBOL * STEP


def price(symbol: str, i: int) -> float:
    base, slope = SYMBOLS[symbol]
    return round(base + i * slope, 4)


def iso(moment) -> str:
    return moment.isoformat()


async def test_openapi_document_covers_every_route(client):
    document = (await client.get("/openapi.json")).json()
    paths = set(document["paths"])
    assert {
        "/health", "/sources", "/sources/{source}", "/sources/{source}/symbols",
        "/sources/{source}/symbols/{symbol}/ticks", "/sources/{source}/symbols/{symbol}/bars",
        "/sources/{source}/prices/latest", "/sources/{source}/summary", "/signals", "/orders", "/fills",
        "/positions", "/account", "/services", "/services/{service_id}/errors",
    } <= paths  # fmt: skip
    bars = document["paths"]["/sources/{source}/symbols/{symbol}/bars"]["get"]
    assert bars["responses"]["200"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/BarSeries"
    }
    assert "404" in bars["responses"]


async def test_health_and_probes(client):
    assert (await client.get("/health")).json() == {
        "status": "ok", "database": True, "redis": True, "timescale": False,
    }  # fmt: skip
    assert (await client.get("/livez")).status_code == 200
    assert (await client.get("/readyz")).status_code == 200


async def test_sources_with_table_stats(client):
    [stats] = (await client.get("/sources")).json()
    assert stats["source"] == "synthetic"
    assert stats["tick_table"] == "price_ticks_synthetic"
    assert stats["bar_table"] == "price_bars_1m_synthetic"
    assert stats["approximate_ticks"] == 2 * TICKS_PER_SYMBOL  # analysed, so the estimate is exact
    assert stats["approximate_bars"] == 2 * TICKS_PER_SYMBOL // 2
    assert stats["symbols"] == 2
    assert stats["first_tick"] == "2026-01-05T10:00:00Z"
    assert stats["total_bytes"] > 0
    assert (await client.get("/sources/synthetic")).json() == stats


@pytest.mark.parametrize(
    "path",
    [
        "/sources/nasdaq",
        "/sources/nasdaq/symbols",
        "/sources/nasdaq/symbols/AAPL/bars",
        "/sources/nasdaq/symbols/AAPL/ticks",
        "/sources/nasdaq/prices/latest",
        "/sources/nasdaq/summary",
    ],
)
async def test_unknown_source_is_a_404_naming_it(client, path):
    response = await client.get(path)
    assert response.status_code == 404
    assert response.json()["detail"] == "unknown source 'nasdaq'; known sources: synthetic"


async def test_a_source_name_is_never_sql(client):
    response = await client.get("/sources/synthetic;DROP TABLE orders/symbols")
    assert response.status_code == 404
    assert "unknown source 'synthetic;DROP TABLE orders'" in response.json()["detail"]
    assert (await client.get("/orders")).status_code == 200


async def test_symbols(client):
    assert (await client.get("/sources/synthetic/symbols")).json() == {
        "source": "synthetic", "symbols": ["AAPL", "MSFT"],
    }  # fmt: skip


@pytest.mark.parametrize("symbol", ["NVDA", "not a symbol", "AAPL'--"])
async def test_unknown_symbol_is_a_404_naming_it(client, symbol):
    for kind in ("bars", "ticks"):
        response = await client.get(f"/sources/synthetic/symbols/{symbol}/{kind}")
        assert response.status_code == 404
        assert response.json()["detail"] == f"unknown symbol {symbol!r} for source 'synthetic'"


async def test_one_minute_bars_match_the_ticks(client):
    response = await client.get(BARS, params={"interval": "1m", "start": iso(START), "end": iso(END)})
    assert response.status_code == 200
    body = response.json()
    assert (body["source"], body["symbol"], body["interval"]) == ("synthetic", "AAPL", "1m")
    bars = body["bars"]
    assert len(bars) == TICKS_PER_SYMBOL // 2
    assert bars[3] == {
        "time": "2026-01-05T10:03:00Z", "open": price("AAPL", 6), "high": price("AAPL", 7),
        "low": price("AAPL", 6), "close": price("AAPL", 7), "volume": 20.0, "trades": 2,
    }  # fmt: skip


@pytest.mark.parametrize(
    ("interval", "ticks_per_bar", "first_bucket"),
    [("5m", 10, "10:00"), ("15m", 30, "10:00"), ("1h", 120, "10:00"), ("1d", 360, "00:00")],
)
async def test_wider_bars_re_bucket_the_minutes(client, interval, ticks_per_bar, first_bucket):
    params = {"interval": interval, "start": iso(START), "end": iso(END)}
    bars = (await client.get("/sources/synthetic/symbols/MSFT/bars", params=params)).json()["bars"]
    assert len(bars) == TICKS_PER_SYMBOL // ticks_per_bar
    first = bars[0]
    assert first["time"] == f"2026-01-05T{first_bucket}:00Z"
    assert first["open"] == price("MSFT", 0)
    assert first["close"] == price("MSFT", ticks_per_bar - 1)
    assert first["high"] == price("MSFT", 0)  # MSFT only falls
    assert first["low"] == price("MSFT", ticks_per_bar - 1)
    assert first["trades"] == ticks_per_bar
    assert sum(b["trades"] for b in bars) == TICKS_PER_SYMBOL


async def test_a_start_inside_a_bucket_gets_the_whole_bucket(client):
    params = {"interval": "1h", "start": iso(START + timedelta(minutes=20)), "end": iso(END)}
    bars = (await client.get(BARS, params=params)).json()["bars"]
    assert bars[0]["time"] == "2026-01-05T10:00:00Z" and bars[0]["trades"] == 120


async def test_an_unknown_interval_is_a_422_listing_the_accepted_ones(client):
    response = await client.get(BARS, params={"interval": "2m"})
    assert response.status_code == 422
    [problem] = response.json()["detail"]
    assert problem["loc"] == ["query", "interval"]
    assert all(f"'{i}'" in problem["msg"] for i in ("1m", "5m", "15m", "1h", "1d"))


async def test_a_backwards_range_is_a_422(client):
    response = await client.get(BARS, params={"start": iso(END), "end": iso(START)})
    assert response.status_code == 422
    [problem] = response.json()["detail"]
    assert problem["msg"].startswith("start (2026-01-05T13:00:00+00:00) must be before end")


async def test_a_malformed_time_is_a_422(client):
    response = await client.get(BARS, params={"start": "yesterday"})
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["query", "start"]


async def test_a_huge_bar_range_is_refused_with_the_limit(client):
    response = await client.get(BARS, params={"interval": "1m", "start": "2020-01-01", "end": "2026-01-01"})
    assert response.status_code == 422
    message = response.json()["detail"][0]["msg"]
    assert "at most 10000 are served per request" in message
    assert "1m, 5m, 15m, 1h, 1d" in message
    wide = await client.get(BARS, params={"interval": "1d", "start": "2020-01-01", "end": "2026-01-06"})
    assert wide.status_code == 200 and len(wide.json()["bars"]) == 1


async def test_ticks_come_in_pages_until_the_end(client):
    path, seen, cursor = "/sources/synthetic/symbols/AAPL/ticks", [], None
    params = {"start": iso(START), "end": iso(END), "limit": 100}
    while True:
        page = (await client.get(path, params={**params, **({"cursor": cursor} if cursor else {})})).json()
        seen += page["ticks"]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert [t["id"] for t in seen] == [f"AAPL-{i:04d}" for i in range(TICKS_PER_SYMBOL)]
    assert seen[5]["price"] == price("AAPL", 5)


async def test_a_tick_page_is_capped_and_a_forged_cursor_rejected(client):
    path = "/sources/synthetic/symbols/AAPL/ticks"
    too_many = await client.get(path, params={"limit": 10_001})
    assert too_many.status_code == 422
    assert "10000" in too_many.json()["detail"][0]["msg"]
    forged = await client.get(path, params={"cursor": "not-a-cursor"})
    assert forged.status_code == 422
    assert forged.json()["detail"][0]["loc"] == ["query", "cursor"]


async def test_latest_prices(client):
    body = (await client.get("/sources/synthetic/prices/latest")).json()
    last = TICKS_PER_SYMBOL - 1
    assert [(p["symbol"], p["price"]) for p in body["prices"]] == [
        ("AAPL", price("AAPL", last)), ("MSFT", price("MSFT", last)),
    ]  # fmt: skip
    one = (await client.get("/sources/synthetic/prices/latest", params={"symbols": "msft"})).json()
    assert [p["symbol"] for p in one["prices"]] == ["MSFT"]


async def test_latest_prices_of_unknown_or_malformed_symbols(client):
    unknown = await client.get("/sources/synthetic/prices/latest", params={"symbols": "AAPL,NVDA,ZZZ"})
    assert unknown.status_code == 404
    assert unknown.json()["detail"] == "unknown symbols for source 'synthetic': NVDA, ZZZ"
    malformed = await client.get("/sources/synthetic/prices/latest", params={"symbols": "AAPL,x y"})
    assert malformed.status_code == 422
    assert "'x y' is not a ticker symbol" in malformed.json()["detail"][0]["msg"]


async def test_market_summary_without_recent_bars_uses_the_last_price(client):
    body = (await client.get("/sources/synthetic/summary", params={"top": 1})).json()
    assert {m["symbol"] for m in body["symbols"]} == {"AAPL", "MSFT"}
    assert all(m["change"] == 0 for m in body["symbols"])  # the known history is older than a day


async def test_signals_orders_fills_and_positions(client):
    [signal] = (await client.get("/signals", params={"symbol": "AAPL"})).json()
    assert signal["strategy"] == "sma_crossover" and signal["side"] == "buy"
    assert (await client.get("/signals", params={"symbol": "MSFT"})).json() == []
    [order] = (await client.get("/orders")).json()
    assert order["status"] == "filled" and order["signal_id"] == signal["id"]
    [fill] = (await client.get("/fills", params={"start": iso(START), "end": iso(END)})).json()
    assert fill["price"] == 110.05
    assert (await client.get("/fills", params={"end": iso(START)})).json() == []
    [position] = (await client.get("/positions")).json()
    assert position["symbol"] == "AAPL" and position["quantity"] == 10


async def test_trading_lists_validate_their_filters(client):
    assert (await client.get("/signals", params={"limit": 0})).status_code == 422
    assert (await client.get("/orders", params={"limit": 1001})).status_code == 422
    bad = await client.get("/fills", params={"symbol": "not a symbol"})
    assert bad.status_code == 422 and bad.json()["detail"][0]["loc"] == ["query", "symbol"]
