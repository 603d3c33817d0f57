"""Strategies by name, built from settings (STRATEGIES=sma_crossover,rsi)."""

from __future__ import annotations

from collections.abc import Callable

from tradebot.common.settings import Settings
from tradebot.strategy.base import Strategy
from tradebot.strategy.rsi import RsiMeanReversion
from tradebot.strategy.sma_crossover import SmaCrossover

STRATEGY_FACTORIES: dict[str, Callable[[Settings], Strategy]] = {
    SmaCrossover.name: lambda s: SmaCrossover(s.sma_short_window, s.sma_long_window),
    RsiMeanReversion.name: lambda s: RsiMeanReversion(s.rsi_period, s.rsi_oversold, s.rsi_overbought),
}


def build_strategies(settings: Settings) -> list[Strategy]:
    unknown = [name for name in settings.strategies if name not in STRATEGY_FACTORIES]
    if unknown:
        raise ValueError(
            f"STRATEGIES names unknown strategies {unknown}; available: {sorted(STRATEGY_FACTORIES)}"
        )
    return [STRATEGY_FACTORIES[name](settings) for name in settings.strategies]
