"""A backtest: ticks through the live strategies and paper broker, with its equity curve and metrics.

`run_backtest` is pure given its ticks; the CLI and the sweep feed it stored history
or a file. The equity is sampled once a minute of event time (the broker marks held
symbols at their trades), which is what the returns-based metrics use.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from tradebot.backtest import metrics
from tradebot.backtest.engine import Simulation
from tradebot.common.models import Fill, Order, PriceTick, TradeSignal
from tradebot.execution.paper import Execution, PaperBroker
from tradebot.execution.portfolio import Portfolio
from tradebot.execution.trades import TradeBook
from tradebot.strategy.base import Strategy


@dataclass
class BacktestResult:
    strategies: list[Strategy]
    start: datetime
    end: datetime
    cash: float
    signals: list[TradeSignal] = field(default_factory=list)
    orders: list[Order] = field(default_factory=list)
    fills: list[Fill] = field(default_factory=list)
    equity: list[tuple[datetime, float]] = field(default_factory=list)
    exposed: list[bool] = field(default_factory=list)
    trades: list[metrics.RoundTrip] = field(default_factory=list)
    first_price: dict[str, float] = field(default_factory=dict)
    last_price: dict[str, float] = field(default_factory=dict)
    events: int = 0
    seconds: float = 0.0
    portfolio: Portfolio | None = None

    def summary(self) -> dict[str, Any]:
        """The figures of `--json`: one flat object."""
        curve = [value for _, value in self.equity]
        returns = metrics.returns_of(curve)
        final = curve[-1] if curve else self.cash
        moves = [self.last_price[s] / p - 1 for s, p in self.first_price.items() if p > 0]
        finite = metrics.finite
        return {
            "strategy": ",".join(s.name for s in self.strategies),
            "params": {s.name: s.params.model_dump(mode="json") for s in self.strategies},
            "symbols": sorted(self.first_price),
            "start": self.start.isoformat(),
            "end": self.end.isoformat(),
            "events": self.events,
            "signals": len(self.signals),
            "trades": len(self.trades),
            "fills": len(self.fills),
            "return_pct": round((final / self.cash - 1) * 100, 4),
            "cagr_pct": finite(metrics.cagr(curve) * 100),
            "sharpe": finite(metrics.sharpe(returns)),
            "sortino": finite(metrics.sortino(returns)),
            "max_drawdown_pct": round(metrics.max_drawdown(curve) * 100, 4),
            "win_rate_pct": finite(metrics.win_rate(self.trades) * 100),
            "profit_factor": finite(metrics.profit_factor(self.trades)),
            "exposure_pct": round(sum(self.exposed) / len(self.exposed) * 100, 2) if self.exposed else 0.0,
            "fees": round(sum(f.fee for f in self.fills), 4),
            "benchmark_return_pct": round(sum(moves) / len(moves) * 100, 4) if moves else None,
            "final_equity": round(final, 2),
            "seconds": round(self.seconds, 3),
        }


class Backtest:
    """Feed it ticks in time order (in as many chunks as you like), then `finish` it."""

    def __init__(
        self,
        strategies: list[Strategy],
        broker: PaperBroker,
        cash: float,
        start: datetime,
        end: datetime,
        grace_seconds: float = 5.0,
    ) -> None:
        self.result = BacktestResult(strategies, start, end, cash, portfolio=Portfolio.opening(cash))
        assert self.result.portfolio is not None
        self.simulation = Simulation(strategies, broker, self.result.portfolio, grace_seconds)
        self.book = TradeBook()
        self.minute: int | None = None
        self.began = time.perf_counter()

    def feed(self, ticks: Iterable[PriceTick]) -> None:
        result, step = self.result, self.simulation.step
        for tick in ticks:
            result.events += 1
            if tick.type == "trade":
                result.first_price.setdefault(tick.symbol, tick.price)
                result.last_price[tick.symbol] = tick.price
            stamp = int(tick.time.timestamp()) // 60
            if stamp != self.minute:  # the equity at the end of each minute with a tick
                if self.minute is not None:
                    _sample(result, tick.time)
                self.minute = stamp
            signals, executions = step(tick)
            if signals or executions:
                _record(result, self.book, signals, executions)

    def finish(self) -> BacktestResult:
        result = self.result
        _record(result, self.book, *self.simulation.finish_until(result.end))
        _sample(result, result.end)
        result.seconds = time.perf_counter() - self.began
        return result


def run_backtest(
    strategies: list[Strategy],
    broker: PaperBroker,
    ticks: Iterable[PriceTick],
    cash: float,
    start: datetime,
    end: datetime,
    grace_seconds: float = 5.0,
) -> BacktestResult:
    """Replay `ticks` (time order) through the strategies and the broker on a simulated clock."""
    backtest = Backtest(strategies, broker, cash, start, end, grace_seconds)
    backtest.feed(ticks)
    return backtest.finish()


def _sample(result: BacktestResult, moment: datetime) -> None:
    portfolio = result.portfolio
    assert portfolio is not None
    result.equity.append((moment, portfolio.equity()))
    result.exposed.append(bool(portfolio.open_positions()))


def _record(
    result: BacktestResult, book: TradeBook, signals: list[TradeSignal], executions: list[Execution]
) -> None:
    result.signals.extend(signals)
    for execution in executions:
        result.orders.append(execution.order)
        if execution.fill is not None:
            result.fills.append(execution.fill)
            trade = book.add(execution.order, execution.fill)
            if trade is not None:
                result.trades.append(trade)
