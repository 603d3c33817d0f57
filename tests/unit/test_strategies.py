"""Strategy math, fed prices directly: no Redis."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from tradebot.common.models import PriceTick, Side
from tradebot.common.settings import Settings
from tradebot.strategy.registry import build_strategies
from tradebot.strategy.rsi import RsiMeanReversion, wilder_rsi
from tradebot.strategy.sma_crossover import SmaCrossover

START = datetime(2026, 1, 5, 14, 30, tzinfo=UTC)


def ticks(prices, symbol="AAPL"):
    return [
        PriceTick(id=f"t{i}", source="synthetic", symbol=symbol, time=START + timedelta(seconds=i), price=p)
        for i, p in enumerate(prices)
    ]


def signals(strategy, prices, symbol="AAPL"):
    return [s for t in ticks(prices, symbol) if (s := strategy.on_tick(t)) is not None]


def test_sma_crossover_fires_once_per_cross():
    prices = [10.0] * 5 + [9.0] * 5 + [12.0] * 6 + [8.0] * 6
    fired = signals(SmaCrossover(2, 4), prices)
    assert [s.side for s in fired] == [Side.BUY, Side.SELL]
    buy = fired[0]
    assert buy.tick_id == "t10" and buy.price == 12.0
    assert "crossed above" in buy.reason and 0 < buy.strength <= 1
    assert buy.id == "sma_crossover:synthetic:t10"


def test_sma_keeps_symbols_apart():
    strategy = SmaCrossover(2, 3)
    assert signals(strategy, [10, 10, 10, 12], "AAPL") == []  # first comparison: no previous side
    assert signals(strategy, [10, 10, 10], "MSFT") == []
    assert [s.symbol for s in signals(strategy, [8, 7], "AAPL")] == ["AAPL"]


def test_wilder_rsi_reference_values():
    assert wilder_rsi(1.0, 1.0) == 50.0
    assert wilder_rsi(3.0, 1.0) == 75.0
    assert wilder_rsi(0.0, 0.0) == 50.0
    assert wilder_rsi(1.0, 0.0) == 100.0


def test_rsi_signals_on_entering_zones():
    falling = [100.0 - i for i in range(10)]
    rising = [91.0 + 2 * i for i in range(10)]
    fired = signals(RsiMeanReversion(period=3, oversold=30, overbought=70), falling + rising)
    assert [s.side for s in fired] == [Side.BUY, Side.SELL]
    assert fired[0].reason.startswith("RSI(3) 0.0 <= 30")
    assert all(0 < s.strength <= 1 for s in fired)


def test_registry_builds_from_settings_and_rejects_unknown():
    names = [s.name for s in build_strategies(Settings(_env_file=None))]
    assert names == ["sma_crossover", "rsi"]
    with pytest.raises(ValueError, match="unknown strategies \\['magic'\\]"):
        build_strategies(Settings(_env_file=None, strategies="sma_crossover,magic"))
