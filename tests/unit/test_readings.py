"""The readings the dashboard draws are the strategies' own indicator values."""

from __future__ import annotations

import statistics
from datetime import UTC, datetime, timedelta

from tradebot.common.models import PriceTick
from tradebot.strategy.readings import readings, remember, strategy_config
from tradebot.strategy.registry import build_strategies
from tradebot.strategy.runner import StrategyRunner

START = datetime(2026, 1, 5, 14, 30, tzinfo=UTC)
PRICES = [100.0, 101.0, 103.0, 102.0, 99.0, 98.0, 100.0, 104.0, 107.0, 105.0]
PARAMS = {
    "sma_crossover": {"fast": 3, "slow": 5, "input": "trades"},
    "bollinger": {"period": 4, "width": 2, "input": "trades"},
    "rsi": {"period": 3, "input": "trades"},
}


def test_each_strategy_reports_its_indicators_as_computed_by_hand():
    strategies = build_strategies(list(PARAMS), PARAMS)
    runner = StrategyRunner(strategies, 5.0)
    signals = []
    for n, price in enumerate(PRICES):
        tick = PriceTick(id=f"t{n}", source="synthetic", symbol="AAPL", time=START + timedelta(seconds=n),
                         price=price, size=1)  # fmt: skip
        signals += runner.on_tick(tick)
    last: dict = {}
    remember(last, signals)
    found = readings(runner, last, 1.0)["AAPL"]
    sma = found["sma_crossover"]["values"]
    assert sma["fast"] == round(statistics.fmean(PRICES[-3:]), 6)
    assert sma["slow"] == round(statistics.fmean(PRICES[-5:]), 6)
    band = found["bollinger"]["values"]
    middle, spread = statistics.fmean(PRICES[-4:]), 2 * statistics.pstdev(PRICES[-4:])
    assert band["middle"] == round(middle, 6) and abs(band["upper"] - (middle + spread)) < 1e-5
    assert 0 <= found["rsi"]["values"]["rsi"] <= 100
    crossings = [s for s in signals if s.strategy == "sma_crossover"]
    assert crossings and found["sma_crossover"]["last_signal"]["side"] == crossings[-1].side.value
    config = strategy_config(strategies)
    assert config["sma_crossover"]["overlays"] == ["fast", "slow"] and config["rsi"]["overlays"] == []
    assert config["bollinger"]["params"]["period"] == 4


def test_a_warming_up_strategy_reports_nothing_yet():
    [strategy] = build_strategies(
        ["sma_crossover"], {"sma_crossover": {"fast": 3, "slow": 50, "input": "trades"}}
    )
    runner = StrategyRunner([strategy], 5.0)
    runner.on_tick(PriceTick(id="t", source="synthetic", symbol="MSFT", time=START, price=10.0, size=1))
    values = readings(runner, {}, 1.0)["MSFT"]["sma_crossover"]["values"]
    assert values == {"fast": None, "slow": None}
