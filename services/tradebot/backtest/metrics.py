"""Performance metrics of an equity curve and its round-trip trades. Pure.

Definitions are empyrical's (tests/unit/test_backtest_metrics.py checks each against
empyrical-reloaded on the same returns): returns are per equity sample (one a
minute of event time), annualised over MINUTES_PER_YEAR.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass

MINUTES_PER_YEAR = 252 * 390
"""Trading minutes in a year (252 sessions of 6.5 hours): the annualisation of 1-minute returns."""


@dataclass(frozen=True)
class RoundTrip:
    """One position from its entry to its exit."""

    symbol: str
    strategy: str
    entry_time: str
    entry_price: float
    exit_time: str
    exit_price: float
    quantity: float
    pnl: float
    """After fees of both fills."""
    fees: float
    exit_reason: str


def returns_of(equity: Sequence[float]) -> list[float]:
    return [b / a - 1 for a, b in itertools.pairwise(equity) if a > 0]


def sharpe(returns: Sequence[float], periods: int = MINUTES_PER_YEAR) -> float:
    if len(returns) < 2:
        return math.nan
    mean = math.fsum(returns) / len(returns)
    variance = math.fsum((r - mean) ** 2 for r in returns) / (len(returns) - 1)
    return mean / math.sqrt(variance) * math.sqrt(periods) if variance > 0 else math.nan


def sortino(returns: Sequence[float], periods: int = MINUTES_PER_YEAR) -> float:
    if not returns:
        return math.nan
    mean = math.fsum(returns) / len(returns)
    downside = math.sqrt(math.fsum(min(r, 0.0) ** 2 for r in returns) / len(returns))
    if downside == 0:
        return math.inf if mean > 0 else math.nan
    return mean * math.sqrt(periods) / downside


def max_drawdown(equity: Sequence[float]) -> float:
    """The deepest fall from a peak, as a negative fraction (empyrical's sign)."""
    peak, worst = -math.inf, 0.0
    for value in equity:
        peak = max(peak, value)
        if peak > 0:
            worst = min(worst, value / peak - 1)
    return worst


def drawdowns(equity: Sequence[float]) -> list[float]:
    peak, out = -math.inf, []
    for value in equity:
        peak = max(peak, value)
        out.append(value / peak - 1 if peak > 0 else 0.0)
    return out


def cagr(equity: Sequence[float], periods: int = MINUTES_PER_YEAR) -> float:
    """Compound annual growth over the samples (len - 1 periods)."""
    if len(equity) < 2 or equity[0] <= 0:
        return math.nan
    years = (len(equity) - 1) / periods
    return (equity[-1] / equity[0]) ** (1 / years) - 1


def win_rate(trades: Sequence[RoundTrip]) -> float:
    return sum(t.pnl > 0 for t in trades) / len(trades) if trades else math.nan


def profit_factor(trades: Sequence[RoundTrip]) -> float:
    """Gross profit over gross loss (inf without a losing trade, nan without trades)."""
    profit = math.fsum(t.pnl for t in trades if t.pnl > 0)
    loss = -math.fsum(t.pnl for t in trades if t.pnl < 0)
    if not trades:
        return math.nan
    return profit / loss if loss > 0 else math.inf


def finite(value: float, digits: int = 4) -> float | None:
    """JSON has no inf/nan: None stands for 'not defined here'."""
    return round(value, digits) if math.isfinite(value) else None
