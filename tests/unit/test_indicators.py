"""Our O(1) indicators against talipp, value for value, on the same random series."""

from __future__ import annotations

import math
import random

import msgspec
import pytest
from talipp.indicators import ATR, BB, EMA, MACD, RSI, SMA, DonchianChannels, StdDev
from talipp.ohlcv import OHLCV

from tradebot.strategy.indicators import Atr, Bands, Ema, Extreme, Macd, Rsi, Sma, Window

N = 3_000


def walk(seed: int = 7, n: int = N) -> list[float]:
    rng, price, prices = random.Random(seed), 100.0, []
    for _ in range(n):
        price *= math.exp(rng.gauss(0, 0.01))
        prices.append(round(price, 4))
    return prices


def candles(seed: int = 11) -> list[OHLCV]:
    rng, out = random.Random(seed), []
    for close in walk(seed):
        high, low = close * (1 + rng.random() * 0.01), close * (1 - rng.random() * 0.01)
        out.append(OHLCV(close, high, low, close, 100.0))
    return out


def same(ours: list[float | None], theirs: list[float | None]) -> None:
    assert len(ours) == len(theirs)
    for index, (a, b) in enumerate(zip(ours, theirs, strict=True)):
        if b is None:
            assert a is None, index
        else:
            assert a == pytest.approx(b, rel=1e-9, abs=1e-9), index


@pytest.mark.parametrize("period", [2, 5, 20, 50])
def test_sma_and_ema_match_talipp(period):
    prices = walk()
    sma, ema = Sma.of(period), Ema(period)
    same([sma.push(p) for p in prices], list(SMA(period, prices)))
    same([ema.push(p) for p in prices], list(EMA(period, prices)))


@pytest.mark.parametrize("period", [2, 14, 30])
def test_rsi_matches_talipp(period):
    prices = walk(3)
    rsi = Rsi(period)
    same([rsi.push(p) for p in prices], list(RSI(period, prices)))


def test_flat_prices_give_rsi_100_like_talipp():
    rsi = Rsi(3)
    assert [rsi.push(1.0) for _ in range(5)][-1] == list(RSI(3, [1.0] * 5))[-1] == 100.0


@pytest.mark.parametrize(("period", "width"), [(20, 2.0), (10, 1.5)])
def test_bollinger_bands_match_talipp(period, width):
    prices = walk(5)
    bands = Bands.of(period, width)
    ours = [bands.push(p) for p in prices]
    theirs = list(BB(period, width, prices))
    same([o[0] if o else None for o in ours], [t.lb if t else None for t in theirs])
    same([o[1] if o else None for o in ours], [t.cb if t else None for t in theirs])
    same([o[2] if o else None for o in ours], [t.ub if t else None for t in theirs])


def test_rolling_stdev_stays_exact_over_many_laps():
    prices = [1_000 + p for p in walk(9, 20_000)]  # large level, small moves: where sums drift
    window = Window(25)
    ours = []
    for p in prices:
        window.push(p)
        ours.append(window.stdev() if window.full else None)
    same(ours[-100:], list(StdDev(25, prices))[-100:])


def test_macd_matches_talipp():
    prices = walk(13)
    macd = Macd.of(12, 26, 9)
    ours = [macd.push(p) for p in prices]
    theirs = list(MACD(12, 26, 9, prices))
    same([o[0] if not math.isnan(o[0]) else None for o in ours], [t.macd if t else None for t in theirs])
    same([o[1] for o in ours], [t.signal if t else None for t in theirs])


@pytest.mark.parametrize("period", [2, 14])
def test_atr_matches_talipp(period):
    bars = candles()
    atr = Atr(period)
    same([atr.push(b.high, b.low, b.close) for b in bars], list(ATR(period, bars)))


@pytest.mark.parametrize("period", [3, 20, 55])
def test_donchian_extremes_match_talipp(period):
    bars = candles(17)
    highs, lows = Extreme(period, maximum=True), Extreme(period, maximum=False)
    theirs = list(DonchianChannels(period, bars))
    same([highs.push(b.high) for b in bars], [t.ub if t else None for t in theirs])
    same([lows.push(b.low) for b in bars], [t.lb if t else None for t in theirs])


def test_indicator_state_round_trips_through_a_checkpoint():
    """Encode midway, decode, continue: the same values as never stopping."""
    prices = walk(21, 500)
    whole = Rsi(14), Bands.of(20, 2.0), Extreme(10)
    halves = Rsi(14), Bands.of(20, 2.0), Extreme(10)
    for p in prices[:250]:
        for ind in halves:
            ind.push(p)
    halves = tuple(msgspec.msgpack.decode(msgspec.msgpack.encode(i), type=type(i)) for i in halves)
    for p in prices[:250]:
        for ind in whole:
            ind.push(p)
    for p in prices[250:]:
        assert [i.push(p) for i in whole] == [i.push(p) for i in halves]
