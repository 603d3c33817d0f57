"""Strategies, bars and the runner, fed ticks directly: no Redis."""

from __future__ import annotations

import random
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tradebot.common.models import PriceTick, Side
from tradebot.strategy.bars import BarBuilder, epoch_us
from tradebot.strategy.registry import STRATEGY_CLASSES, StrategyConfigError, build_strategies, build_strategy
from tradebot.strategy.runner import StrategyRunner, run_all

START = datetime(2026, 1, 5, 14, 30, tzinfo=UTC)


def trade(price, seconds, symbol="AAPL", n=0, size=10.0, kind="trade"):
    return PriceTick(
        id=f"t{n}", source="synthetic", symbol=symbol, time=START + timedelta(seconds=seconds),
        price=price, size=size, type=kind,
    )  # fmt: skip


def minute_closes(closes, symbol="AAPL"):
    """One trade per minute at the given closes (each bar has one trade)."""
    return [trade(p, 60 * i, symbol, n=i) for i, p in enumerate(closes)]


def run(names, ticks, params=None, grace=5.0):
    return run_all(StrategyRunner(build_strategies(names, params or {}), grace), ticks)


# ------------------------------------------------------------------ bars
def test_bars_follow_storage_rollup_rules():
    builder = BarBuilder(60)
    ticks = [trade(10, 1, n=1), trade(12, 20, n=2, size=5), trade(9, 30, n=3), trade(11, 5, n=4),
             trade(11.5, 30, n=5)]  # fmt: skip
    assert all(builder.add(t) is None for t in ticks)
    bar = builder.add(trade(20, 61, n=6))  # the next bucket's first trade closes it
    assert (bar.open, bar.high, bar.low, bar.close) == (10, 12, 9, 11.5)  # tie at :30 -> later arrival
    assert bar.volume == 45 and bar.trades == 5
    assert bar.start == epoch_us(START) and bar.last_tick_id == "t5"


def test_late_trade_is_counted_not_folded_in():
    builder = BarBuilder(60)
    builder.add(trade(10, 1, n=1))
    builder.add(trade(11, 70, n=2))
    assert builder.add(trade(99, 2, n=3)) is None and builder.late_trades == 1
    assert builder.current.high == 11


def test_quiet_symbol_bar_closes_after_grace_on_the_clock():
    runner = StrategyRunner(build_strategies(["sma_crossover"], {"sma_crossover": {"fast": 1, "slow": 2}}), 5)
    runner.on_tick(trade(10, 1), wall=1000.0)
    assert runner.books["AAPL"].builders["1m"].current is not None
    runner.on_clock(1000.0 + 63)  # idle 63 s: 1 s + 63 s = 64 s < 60 + 5
    assert runner.books["AAPL"].builders["1m"].current is not None
    runner.on_clock(1000.0 + 64)
    assert runner.books["AAPL"].builders["1m"].current is None


def test_another_symbols_ticks_move_the_clock():
    runner = StrategyRunner(build_strategies(["rsi"], {}), 5)
    runner.on_tick(trade(10, 1, "AAPL"))
    runner.on_tick(trade(10, 66, "MSFT"))  # event time 66 s >= AAPL's bar end 60 + grace 5
    assert runner.books["AAPL"].builders["1m"].current is None


# ------------------------------------------------------------------ strategies
def test_crossover_fires_once_per_cross_on_bar_closes():
    closes = [10.0] * 5 + [9.0] * 5 + [12.0] * 6 + [8.0] * 6
    signals = run(["sma_crossover"], minute_closes(closes), {"sma_crossover": {"fast": 2, "slow": 4}})
    assert [s.side for s in signals] == [Side.BUY, Side.SELL]
    buy = signals[0]
    assert buy.id == f"sma_crossover:synthetic:AAPL:1m:{epoch_us(START) // 1_000_000 + 60 * 10}"
    assert buy.time == START + timedelta(minutes=11)  # the bar's end
    assert buy.tick_id == "t10" and buy.price == 12.0 and 0 < buy.strength <= 1


def test_ema_variant_and_symbols_kept_apart():
    closes = [10.0] * 5 + [9.0] * 5 + [12.0] * 6
    ticks = sorted(minute_closes(closes, "AAPL") + minute_closes([50.0] * 16, "MSFT"), key=lambda t: t.time)
    signals = run(["sma_crossover"], ticks, {"sma_crossover": {"fast": 2, "slow": 4, "average": "ema"}})
    assert {s.symbol for s in signals} == {"AAPL"}


def test_rsi_buys_leaving_oversold_and_sells_leaving_overbought():
    closes = [100 - i for i in range(20)] + [81, 83, 85] + [86 + 2 * i for i in range(20)] + [120, 115, 110]
    signals = run(["rsi"], minute_closes(closes), {"rsi": {"period": 5}})
    assert [s.side for s in signals] == [Side.BUY, Side.SELL]
    assert "rose out of oversold 30" in signals[0].reason


def test_bollinger_buys_back_inside_and_sells_at_the_mean():
    closes = [100.0, 101.0] * 10 + [90.0, 100.5, 101.5, 102.0]
    signals = run(["bollinger"], minute_closes(closes), {"bollinger": {"period": 10}})
    assert [s.side for s in signals] == [Side.BUY, Side.SELL]


def test_donchian_breaks_out_and_exits_on_the_low():
    closes = [100.0, 101.0] * 12 + [105.0, 106.0] + [95.0]
    signals = run(
        ["donchian_breakout"], minute_closes(closes), {"donchian_breakout": {"entry": 5, "exit": 3}}
    )
    assert [s.side for s in signals] == [Side.BUY, Side.SELL]
    assert signals[0].atr and "broke the 5-bar high" in signals[0].reason


def test_trade_and_quote_inputs_evaluate_every_tick():
    ticks = [trade(p, i, n=i) for i, p in enumerate([10, 10, 10, 9, 9, 12, 12, 12])]
    signals = run(["sma_crossover"], ticks, {"sma_crossover": {"fast": 2, "slow": 3, "input": "trades"}})
    assert signals and signals[0].id.startswith("sma_crossover:synthetic:AAPL:trades:")
    quotes = [trade(p, i, n=i, kind="quote") for i, p in enumerate([10, 10, 10, 9, 9, 12, 12, 12])]
    assert run(["sma_crossover"], quotes, {"sma_crossover": {"fast": 2, "slow": 3, "input": "trades"}}) == []
    assert run(["sma_crossover"], quotes, {"sma_crossover": {"fast": 2, "slow": 3, "input": "quotes"}})


def test_provider_bars_are_used_directly():
    bars = [trade(p, 60 * i, n=i, kind="bar") for i, p in enumerate([10.0] * 5 + [9.0] * 5 + [12.0] * 6)]
    signals = run(["sma_crossover"], bars, {"sma_crossover": {"fast": 2, "slow": 4, "input": "provider_1m"}})
    assert [s.side for s in signals] == [Side.BUY]
    assert (
        run(["sma_crossover"], bars, {"sma_crossover": {"fast": 2, "slow": 4}}) == []
    )  # 1m from trades only


def test_higher_timeframes_bucket_by_event_time():
    ticks = [trade(100 + (i % 7), 30 * i, n=i) for i in range(400)]
    five = run(["rsi"], ticks, {"rsi": {"input": "5m", "period": 3}})
    assert all(s.id.split(":")[3] == "5m" and (s.time - START).total_seconds() % 300 == 0 for s in five)


# ------------------------------------------------------------------ registry and parameters
def test_every_strategy_documents_its_parameters():
    for cls in STRATEGY_CLASSES.values():
        assert cls.summary and sys.modules[cls.__module__].__doc__, cls.name
        for row in cls.describe_params(cls.Params):
            assert row["description"], (cls.name, row["name"])


@pytest.mark.parametrize(
    ("names", "params", "message"),
    [
        (["magic"], {}, "unknown strategy 'magic'; available: bollinger, donchian_breakout, rsi, sma_"),
        (["rsi"], {"rsi": {"perod": 3}}, "strategy 'rsi' has no parameter 'perod'; its parameters: input"),
        (["rsi"], {"rsi": {"period": 1}}, "strategy 'rsi' parameter period=1: Input should be greater than"),
        (["rsi"], {"rsi": {"oversold": 80}}, "strategy 'rsi': oversold (80) must be below overbought (70)"),
        (["sma_crossover"], {"sma_crossover": {"fast": 30, "slow": 10}}, "fast (30) must be below slow (10)"),
        (["donchian_breakout"], {"donchian_breakout": {"input": "trades"}},
         "strategy 'donchian_breakout' parameter input='trades': it accepts 1m, 5m, 15m, 1h, provider_1m"),
        (["rsi"], {"rsi": {"input": "2m"}}, "strategy 'rsi' parameter input='2m': Input should be"),
        (["rsi", "rsi"], {}, "STRATEGIES names rsi more than once"),
        (["rsi"], {"bollinger": {"width": 0}}, "strategy 'bollinger' parameter width=0: Input should be"),
        (["rsi"], {"nope": {}}, "unknown strategy 'nope'"),
    ],
)  # fmt: skip
def test_refusals_name_strategy_parameter_and_bound(names, params, message):
    with pytest.raises(StrategyConfigError) as refused:
        build_strategies(names, params)
    assert message in str(refused.value)


def test_parameters_are_typed_and_defaulted():
    strategy = build_strategy("rsi", {"period": "9"})
    assert strategy.params.period == 9 and strategy.params.oversold == 30 and strategy.input == "1m"


# ------------------------------------------------------------------ runner determinism and checkpoints
def market(n=6_000, symbols=("AAPL", "MSFT", "TSLA"), seed=5):
    rng, prices, ticks = random.Random(seed), dict.fromkeys(symbols, 100.0), []
    for i in range(n):
        symbol = symbols[i % len(symbols)]
        prices[symbol] *= 1 + rng.gauss(0, 0.002)
        ticks.append(trade(round(prices[symbol], 4), i * 0.5, symbol, n=i))
    return ticks


ALL = list(STRATEGY_CLASSES)
FAST = {"sma_crossover": {"fast": 3, "slow": 8}, "rsi": {"period": 5}, "bollinger": {"period": 8},
        "donchian_breakout": {"entry": 6, "exit": 3}}  # fmt: skip


def test_checkpoint_midway_continues_exactly():
    ticks = market()
    whole = run(ALL, ticks, FAST)
    assert len(whole) > 20
    first = StrategyRunner(build_strategies(ALL, FAST), 5)
    before = [s for t in ticks[:2_345] for s in first.on_tick(t)]
    second = StrategyRunner(build_strategies(ALL, FAST), 5)
    assert second.restore(first.checkpoint("1-1")) == ("1-1", [])
    after = run_all(second, ticks[2_345:])
    assert [s.id for s in before + after] == [s.id for s in whole]
    assert before + after == whole


def test_changed_parameters_start_that_strategy_cold():
    first = StrategyRunner(build_strategies(["rsi", "bollinger"], {}), 5)
    for t in market(600):
        first.on_tick(t)
    changed = StrategyRunner(build_strategies(["rsi", "bollinger"], {"rsi": {"period": 9}}), 5)
    assert changed.restore(first.checkpoint("9-0"))[1] == ["rsi"]


def test_symbols_split_across_runners_give_the_same_signals():
    """What sharding relies on: a symbol's signals depend on its own ticks only (bars closed by trades)."""
    ticks = market()
    whole = {s.id for s in run(ALL, ticks, FAST)}
    parts = set()
    for symbol in ("AAPL", "MSFT", "TSLA"):
        parts |= {s.id for s in run(ALL, [t for t in ticks if t.symbol == symbol], FAST)}
    assert parts == whole


def test_the_readme_example_strategy_runs():
    """README's "Writing one" is real code: define it, run it on bars, get its signals."""
    readme = (Path(__file__).parents[2] / "README.md").read_text()
    code = readme.split("### Writing one")[1].split("```python")[1].split("```")[0]
    namespace: dict = {}
    exec(  # the README example, with the imports a module of its own would have
        "from msgspec import Struct\nfrom pydantic import Field\nfrom tradebot.common.models import Side\n"
        "from tradebot.strategy.base import EVERY_INPUT, Decision, Strategy, StrategyParams, clamp_strength\n"
        "from tradebot.strategy.bars import Bar\nfrom tradebot.strategy.indicators import Window\n" + code,
        namespace,
    )
    momentum = namespace["Momentum"](namespace["MomentumParams"](lookback=3, threshold_pct=1))
    signals = run_all(StrategyRunner([momentum], 5), minute_closes([100, 100, 100, 100, 102, 99, 99]))
    assert [(s.side, s.reason) for s in signals] == [(Side.BUY, "up 2.00%")]
