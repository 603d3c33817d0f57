"""The versioned wire encoding."""

from __future__ import annotations

import math
from datetime import UTC, datetime

import pytest

from tradebot.common import wire
from tradebot.common.models import Fill, Position, PriceTick, Side, TradeSignal

NOW = datetime(2026, 1, 5, 15, 30, tzinfo=UTC)


def tick(**changes) -> PriceTick:
    return PriceTick(**{"source": "synthetic", "symbol": "AAPL", "time": NOW, "price": 220.5, **changes})


def test_round_trip_with_trace_context():
    original = tick(size=100, bid=220.4, ask=220.6, volume=1e6)
    fields = wire.encode(original, "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01")
    assert fields[b"v"] == b"1" and fields[b"k"] == b"tick"
    assert wire.decode(fields) == original
    assert wire.traceparent_of(fields).startswith("00-0af7")


def test_signal_round_trip():
    signal = TradeSignal(
        id="s1", time=NOW, strategy="rsi", symbol="MSFT", side=Side.BUY, strength=0.7,
        reason="RSI 20", price=400.0, source="synthetic", tick_id="t1", tick_time=NOW,
    )  # fmt: skip
    assert wire.decode(wire.encode(signal)) == signal


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({b"v": b"9", b"k": b"tick", b"d": b"{}"}, "unsupported wire version"),
        ({b"v": b"1", b"k": b"quote", b"d": b"{}"}, "unknown message kind 'quote'"),
        ({b"v": b"1", b"k": b"tick", b"d": b"not json"}, "invalid tick"),
        ({b"v": b"1", b"k": b"tick", b"d": b'{"source":"x","symbol":"AAPL","time":"2026-01-01T00:00:00Z"}'},
         "invalid tick"),
        ({b"v": b"1", b"k": b"tick", b"d": b'{"source":"DROP TABLE","symbol":"AAPL","price":1,'
                                            b'"time":"2026-01-01T00:00:00Z"}'}, "invalid tick.*'source'"),
        ({b"junk": b"1"}, "unsupported wire version"),
    ],
)  # fmt: skip
def test_bad_entries_raise_wire_error(fields, message):
    with pytest.raises(wire.WireError, match=message):
        wire.decode(fields)


def test_negative_price_is_invalid():
    with pytest.raises(ValueError):
        tick(price=-1)


NOT_FINITE = [math.nan, math.inf, -math.inf]


@pytest.mark.parametrize("value", NOT_FINITE)
def test_numbers_must_be_finite_in_every_model(value):
    with pytest.raises(ValueError, match="finite"):
        Fill(id="f", order_id="o", time=NOW, symbol="AAPL", side=Side.BUY, quantity=1, price=1, fee=0,
             slippage=value)  # fmt: skip
    with pytest.raises(ValueError, match="finite"):
        Position(symbol="AAPL", quantity=value, average_price=1, realized_pnl=0, market_price=1,
                 unrealized_pnl=0, time=NOW)  # fmt: skip


def test_an_infinite_number_on_the_wire_is_invalid():
    fields = {b"v": b"1", b"k": b"fill", b"d": b'{"id":"f","order_id":"o","time":"2026-01-01T00:00:00Z",'
              b'"symbol":"AAPL","side":"buy","quantity":1,"price":1,"fee":0,"slippage":1e999}'}  # fmt: skip
    with pytest.raises(wire.WireError, match="invalid fill"):
        wire.decode(fields)


@pytest.mark.parametrize("field", ["id", "source", "symbol"])
def test_nul_characters_are_refused(field):
    with pytest.raises(ValueError):
        tick(**{field: "A\x00B"})
    signal = {"id": "s", "time": NOW, "strategy": "rsi", "symbol": "MSFT", "side": Side.BUY,
              "strength": 1, "reason": "RSI\x00", "price": 1.0, "source": "synthetic", "tick_id": "t",
              "tick_time": NOW}  # fmt: skip
    with pytest.raises(ValueError, match="NUL"):
        TradeSignal(**signal)
