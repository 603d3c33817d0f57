"""The history API against real PostgreSQL: every answer and every rejection."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest

from api.known_history import START, STEP, SYMBOLS, TICKS_PER_SYMBOL, materialise_bars
from tradebot.common import timescaledb

pytestmark = [pytest.mark.integration, pytest.mark.backends]
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


async def test_health_and_probes(client, postgres_backend):
    health = (await client.get("/health")).json()
    backend = health.pop("backend")
    timescale = postgres_backend == "timescaledb"
    assert health == {"status": "ok", "database": True, "redis": True, "timescale": timescale}
    expected = (
        rf"TimescaleDB {re.escape(timescaledb.VERSION)} on PostgreSQL 18\.\d+"
        if timescale
        else r"PostgreSQL 18\.\d+"
    )
    assert re.fullmatch(expected, backend), backend
    assert (await client.get("/livez")).status_code == 200
    assert (await client.get("/readyz")).status_code == 200


async def test_sources_with_table_stats(client, history):
    await materialise_bars(history)  # TimescaleDB counts materialised bars (as its policies leave them)
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


async def test_a_backwards_range_is_empty(client):
    """[start, end) with start after end holds nothing: an empty answer, whatever the route."""
    backwards = {"start": iso(END), "end": iso(START)}
    body = (await client.get(BARS, params=backwards)).json()
    assert body["bars"] == [] and (body["start"], body["end"]) == (
        "2026-01-05T13:00:00Z",
        "2026-01-05T10:00:00Z",
    )
    ticks = await client.get("/sources/synthetic/symbols/AAPL/ticks", params=backwards)
    assert ticks.status_code == 200 and ticks.json()["ticks"] == []
    assert (await client.get("/fills", params=backwards)).json() == []
    inside_a_bucket = iso(START + timedelta(seconds=30))
    empty = await client.get(BARS, params={"start": inside_a_bucket, "end": inside_a_bucket})
    assert empty.json()["bars"] == []


EXTREMES = [
    "0001-01-01T00:00:00+14:00",
    "0001-01-01T00:00:00Z",
    "9999-12-31T23:59:59-14:00",
    "9999-12-31T23:59:59",
]


@pytest.mark.parametrize(
    "url",
    [
        "/sources/synthetic/symbols/AAPL/ticks?end=0001-01-01T00:00:00Z",
        "/signals?start=0001-01-01T00:00:00%2B14:00",
        "/orders?end=9999-12-31T23:59:59-14:00",
    ],
)
async def test_extreme_dates_of_the_issue_are_answered(client, url):
    response = await client.get(url)
    assert response.status_code == 200, response.text


async def test_every_date_parameter_takes_any_date(client):
    """Every date-time parameter of the document, at the ends of what ISO 8601 can write: before
    1970 and after 2200 mean unbounded, so a range from 0001 to 9999 is everything there is."""
    document = (await client.get("/openapi.json")).json()
    tried = []
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            dates = [
                p["name"] for p in operation.get("parameters", [])
                if any(s.get("format") == "date-time" for s in p["schema"].get("anyOf", [p["schema"]]))
            ]  # fmt: skip
            url = path.replace("{source}", "synthetic").replace("{symbol}", "AAPL")
            for name in dates:
                for moment in EXTREMES:
                    response = await client.request(method, url, params={name: moment})
                    assert response.status_code == 200, (method, url, name, moment, response.text)
                    tried.append((url, name))
    assert {p for p, _ in tried} >= {BARS, "/sources/synthetic/symbols/AAPL/ticks", "/signals", "/orders"}
    everything = {"start": EXTREMES[0], "end": EXTREMES[2]}
    [fill] = (await client.get("/fills", params=everything)).json()
    assert fill["price"] == 110.05


async def test_a_malformed_time_is_a_422(client):
    response = await client.get(BARS, params={"start": "yesterday"})
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["query", "start"]


async def test_a_huge_bar_range_serves_its_newest_bars(client):
    """At most 10,000 bars per answer: the newest of the range, and `start` says where they begin."""
    params = {"interval": "1m", "start": "2020-01-01T00:00:00Z", "end": iso(START + timedelta(minutes=3))}
    body = (await client.get(BARS, params=params)).json()
    assert body["start"] == iso_z(START + timedelta(minutes=3) - 9_999 * timedelta(minutes=1))
    assert [b["time"] for b in body["bars"]] == [
        "2026-01-05T10:00:00Z",
        "2026-01-05T10:01:00Z",
        "2026-01-05T10:02:00Z",
    ]
    earlier = (await client.get(BARS, params={**params, "end": body["start"]})).json()
    assert earlier["bars"] == [] and earlier["end"] == body["start"]
    wide = await client.get(BARS, params={"interval": "1d", "start": "2020-01-01", "end": "2026-01-06"})
    assert wide.status_code == 200 and len(wide.json()["bars"]) == 1


def iso_z(moment) -> str:
    return moment.isoformat().replace("+00:00", "Z")


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
    for forged in ("not-a-cursor", "12:", "1" * 17 + ":AAPL-0001", "5:AAPL\x00"):
        response = await client.get(path, params={"cursor": forged})
        assert response.status_code == 422, forged
        assert response.json()["detail"][0]["loc"] == ["query", "cursor"]


async def test_any_cursor_of_the_documented_shape_is_a_position(client):
    """A cursor is a (time, id) position: one of the documented shape never fails, it starts there."""
    path = "/sources/synthetic/symbols/AAPL/ticks"
    document = (await client.get("/openapi.json")).json()
    template = "/sources/{source}/symbols/{symbol}/ticks"
    [cursor] = [p for p in document["paths"][template]["get"]["parameters"] if p["name"] == "cursor"]
    pattern = next(s for s in cursor["schema"]["anyOf"] if s.get("type") == "string")["pattern"]
    first = (await client.get(path, params={"start": iso(START), "end": iso(END), "limit": 3})).json()
    assert re.fullmatch(pattern, first["next_cursor"])
    after = await client.get(
        path, params={"start": iso(START), "end": iso(END), "cursor": first["next_cursor"]}
    )
    assert after.json()["ticks"][0]["id"] == "AAPL-0003"
    crafted = await client.get(path, params={"start": iso(START), "end": iso(END), "cursor": "0:zzz"})
    assert crafted.status_code == 200 and crafted.json()["ticks"][0]["id"] == "AAPL-0000"


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
    assert "'not a symbol' is not a ticker symbol" in bad.json()["detail"][0]["msg"]


@pytest.mark.parametrize("route", ["/signals", "/orders", "/fills"])
async def test_a_symbol_filter_that_matches_nothing_is_an_empty_list(client, route):
    """A filter narrows a list (200 []); only a symbol in the path names a resource (404)."""
    response = await client.get(route, params={"symbol": "NOPE"})
    assert response.status_code == 200 and response.json() == []
    assert (await client.get(route, params={"symbol": "aapl"})).status_code == 200


async def test_the_document_declares_the_symbol_rules_the_server_applies(client):
    document = (await client.get("/openapi.json")).json()

    def schema(path: str, name: str) -> dict:
        [param] = [p for p in document["paths"][path]["get"]["parameters"] if p["name"] == name]
        return next(s for s in param["schema"].get("anyOf", [param["schema"]]) if s.get("type") == "string")

    symbol = schema("/signals", "symbol")["pattern"]
    bars = "/sources/{source}/symbols/{symbol}/bars"
    assert schema("/fills", "symbol")["pattern"] == schema(bars, "symbol")["pattern"] == symbol
    for accepted in ("AAPL", "aapl", "BRK.B", "BF-B"):
        assert re.fullmatch(symbol, accepted), accepted
        assert (await client.get("/signals", params={"symbol": accepted})).status_code == 200
    for refused in ("", "A B", "AAPL ", "1ABC", "ı", "TOOLONGSYMBOL"):
        assert not re.fullmatch(symbol, refused), refused
        assert (await client.get("/signals", params={"symbol": refused})).status_code == 422, refused
    symbols = schema("/sources/{source}/prices/latest", "symbols")["pattern"]
    assert re.fullmatch(symbols, "AAPL,msft") and re.fullmatch(symbols, "")
    assert re.fullmatch(symbols, ",".join(["A"] * 1000)) and not re.fullmatch(symbols, ",".join(["A"] * 1001))
    assert not re.fullmatch(symbols, "AAPL,,MSFT")
