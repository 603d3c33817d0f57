"""Moving-average crossover: long when the fast average crosses above the slow one, out below.

Trades on the close of each bar. Strength is the gap between the averages at the
cross relative to `full_strength_gap_pct`, so a cross that barely happens is weak.
"""

from __future__ import annotations

from typing import Literal

from msgspec import Struct
from pydantic import Field, model_validator

from tradebot.common.models import Side
from tradebot.strategy.bars import Bar
from tradebot.strategy.base import EVERY_INPUT, Decision, Strategy, StrategyParams, clamp_strength
from tradebot.strategy.indicators import Ema, Sma


class CrossoverParams(StrategyParams):
    fast: int = Field(10, ge=1, le=1_000, description="bars in the fast average")
    slow: int = Field(30, ge=2, le=5_000, description="bars in the slow average")
    average: Literal["sma", "ema"] = Field("sma", description="simple or exponential averages")
    full_strength_gap_pct: float = Field(
        0.1, gt=0, le=100, description="gap between the averages (% of the slow one) at full strength"
    )

    @model_validator(mode="after")
    def _fast_below_slow(self) -> CrossoverParams:
        if self.fast >= self.slow:
            raise ValueError(f"fast ({self.fast}) must be below slow ({self.slow})")
        return self


class CrossoverState(Struct):
    fast: Sma | Ema
    slow: Sma | Ema
    above: bool | None = None


class MovingAverageCrossover(Strategy[CrossoverParams, CrossoverState]):
    name = "sma_crossover"
    summary = "trend: buys when the fast moving average crosses above the slow one, sells below"
    Params = CrossoverParams
    State = CrossoverState
    inputs = EVERY_INPUT
    overlays = ("fast", "slow")

    def readings(self, state: CrossoverState) -> dict[str, float | None]:
        return {"fast": state.fast.current(), "slow": state.slow.current()}

    def new_state(self) -> CrossoverState:
        p = self.params
        if p.average == "ema":
            return CrossoverState(Ema(p.fast), Ema(p.slow))
        return CrossoverState(Sma.of(p.fast), Sma.of(p.slow))

    def decide(self, state: CrossoverState, bar: Bar) -> Decision | None:
        fast, slow = state.fast.push(bar.close), state.slow.push(bar.close)
        if fast is None or slow is None or fast == slow:
            return None  # warming up, or touching: no side yet
        above = fast > slow
        crossed = state.above is not None and above != state.above
        state.above = above
        if not crossed:
            return None
        p = self.params
        gap_pct = abs(fast - slow) / slow * 100
        label = p.average.upper()
        direction = "above" if above else "below"
        reason = f"{label}({p.fast}) {fast:.4f} crossed {direction} {label}({p.slow}) {slow:.4f}"
        return Decision(
            Side.BUY if above else Side.SELL, clamp_strength(gap_pct / p.full_strength_gap_pct), reason
        )
