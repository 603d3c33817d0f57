"""Backtest pieces without servers: metrics against empyrical, the OHLC path, CSV import, no look-ahead."""

from __future__ import annotations

import math
import random
from datetime import UTC, datetime, timedelta

import empyrical
import numpy as np
import pytest

from tradebot.backtest import metrics
from tradebot.backtest.data import DataError, OhlcvBar, bar_path, bars_as_ticks, read_csv
from tradebot.backtest.run import run_backtest
from tradebot.common.models import OrderStatus, Side
from tradebot.execution.paper import PaperBroker, TradingCosts
from tradebot.execution.risk import RiskLimits
from tradebot.execution.sizing import Sizing
from tradebot.strategy.bars import BarBuilder
from tradebot.strategy.registry import build_strategies

START = datetime(2026, 1, 5, 14, 30, tzinfo=UTC)
N = metrics.MINUTES_PER_YEAR


def curve(seed: int = 3, n: int = 2_000) -> list[float]:
    rng, value, out = random.Random(seed), 100_000.0, []
    for _ in range(n):
        value *= 1 + rng.gauss(0.00002, 0.001)
        out.append(value)
    return out


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_metrics_match_empyrical(seed):
    equity = curve(seed)
    returns = metrics.returns_of(equity)
    series = np.array(returns)
    assert metrics.sharpe(returns) == pytest.approx(empyrical.sharpe_ratio(series, annualization=N), rel=1e-9)
    assert metrics.sortino(returns) == pytest.approx(
        empyrical.sortino_ratio(series, annualization=N), rel=1e-9
    )
    assert metrics.max_drawdown(equity) == pytest.approx(empyrical.max_drawdown(series), rel=1e-9)
    assert metrics.cagr(equity) == pytest.approx(empyrical.cagr(series, annualization=N), rel=1e-6)


def test_metrics_on_a_hand_computed_curve():
    equity = [100.0, 110.0, 99.0, 121.0]  # +10 %, -10 %, +22.2 %
    assert metrics.max_drawdown(equity) == pytest.approx(-0.1)
    returns = metrics.returns_of(equity)
    mean = (0.1 - 0.1 + 22 / 99) / 3
    std = math.sqrt(((0.1 - mean) ** 2 + (-0.1 - mean) ** 2 + (22 / 99 - mean) ** 2) / 2)
    assert metrics.sharpe(returns, periods=1) == pytest.approx(mean / std)
    trades = [metrics.RoundTrip("A", "s", "", 1, "", 2, 1, pnl, 0, "") for pnl in (30.0, -10.0, -5.0, 15.0)]
    assert metrics.profit_factor(trades) == pytest.approx(45 / 15)
    assert metrics.win_rate(trades) == 0.5
    assert math.isinf(metrics.profit_factor(trades[:1])) and math.isnan(metrics.profit_factor([]))


def test_a_bar_path_rebuilds_the_bar_exactly():
    bar = OhlcvBar("AAPL", START, 10.0, 12.0, 9.5, 11.0, 400.0)
    builder = BarBuilder(60)
    for tick in bar_path(bar, "csv"):
        builder.add(tick)
    built = builder.current
    assert (built.open, built.high, built.low, built.close, built.volume) == (10.0, 12.0, 9.5, 11.0, 400.0)
    assert [t.price for t in bar_path(bar, "csv")] == [10.0, 9.5, 12.0, 11.0]  # nearer extreme first


def test_csv_import_and_its_refusals(tmp_path):
    good = tmp_path / "msft.csv"
    good.write_text(
        "Date,Open,High,Low,Close,Volume\n2026-01-05T14:31:00Z,2,3,1,2.5,10\n1767623400,1,2,1,2,5\n"
    )
    bars = read_csv(good, None)
    assert [(b.symbol, b.start, b.close) for b in bars] == [
        ("MSFT", START, 2.0), ("MSFT", START + timedelta(minutes=1), 2.5)
    ]  # fmt: skip
    cases = {
        "time,open,high,low\n1,1,1,1\n": "no close column",
        "open,high,low,close\n1,1,1,1\n": "no time (or timestamp, date) column",
        "time,open,high,low,close\nyesterday,1,1,1,1\n": "line 2: time 'yesterday' is neither ISO 8601",
        "time,open,high,low,close\n1,1,x,1,1\n": "line 2: could not convert string to float",
        "time,open,high,low,close\n1,1,0.5,1,1\n": "line 2: need 0 < low <= open, close <= high",
        "time,open,high,low,close\n": "no rows",
    }
    for text, message in cases.items():
        bad = tmp_path / "bad.csv"
        bad.write_text(text)
        with pytest.raises(DataError) as refused:
            read_csv(bad, "AAPL")
        assert message in str(refused.value) and str(bad) in str(refused.value)


def test_no_look_ahead_orders_fill_at_the_next_bars_open():
    """A signal on a bar's close is filled at the open of the next bar, never at that close."""
    closes = [10.0] * 5 + [9.0] * 5 + [12.0] * 6 + [8.0] * 6
    bars = [
        OhlcvBar("AAPL", START + timedelta(minutes=i), c + 0.5, c + 1, c - 1, c, 100)
        for i, c in enumerate(closes)
    ]
    strategies = build_strategies(["sma_crossover"], {"sma_crossover": {"fast": 2, "slow": 4}})
    broker = PaperBroker(TradingCosts(0, 0, 0), RiskLimits(1e9, 1e9, 10, 1e9), Sizing("quantity", quantity=1))
    end = START + timedelta(minutes=len(closes))
    result = run_backtest(strategies, broker, bars_as_ticks(bars, "csv"), 1_000.0, START, end)
    buy, sell = result.signals
    assert (buy.side, sell.side) == (Side.BUY, Side.SELL)
    fills = result.fills
    assert [f.price for f in fills] == [12.5, 8.5]  # the opens after the signals' bars (close 12, close 8)
    assert fills[0].time == buy.time and fills[0].price != buy.price
    assert all(o.status is OrderStatus.FILLED for o in result.orders)
    summary = result.summary()
    assert summary["trades"] == 1 and summary["return_pct"] == pytest.approx((8.5 - 12.5) / 1_000 * 100)
    assert summary["benchmark_return_pct"] == pytest.approx((8.0 / 10.5 - 1) * 100, abs=1e-4)


def test_sweep_grid_combinations_and_ranking():
    from tradebot.backtest.sweep import combinations, parse_grid, ranked

    grid = parse_grid(["fast=3,5", "average=sma,ema"])
    assert grid == {"fast": [3, 5], "average": ["sma", "ema"]}
    sets = combinations(grid, {"slow": 20})
    assert len(sets) == 4 and sets[0] == {"slow": 20, "fast": 3, "average": "sma"}
    rows = [
        {"params": {"n": n}, "metrics": {"sharpe": s}} for n, s in [(1, 0.5), (2, None), (3, 2.0), (4, -1.0)]
    ]
    assert [r["params"]["n"] for r in ranked(rows, "sharpe")] == [3, 1, 4, 2]  # undefined ranks last
    for bad, message in [
        (["fast"], "expected name=value1,value2"),
        (["a=1", "a=2"], "names 'a' twice"),
        ([], "at least one"),
    ]:
        with pytest.raises(ValueError, match=message):
            parse_grid(bad)
