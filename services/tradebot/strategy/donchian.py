"""Donchian breakout (the Turtle rule): buy a close above the highest high of the last
`entry` bars, sell a close below the lowest low of the last `exit` bars.

Needs bars (high and low). Strength is how far the close broke out, in ATRs
(`full_strength_atr` of them is full strength), so a breakout by a hair is weak.
"""

from __future__ import annotations

from msgspec import Struct
from pydantic import Field, model_validator

from tradebot.common.models import Side
from tradebot.strategy.bars import Bar
from tradebot.strategy.base import BAR_INPUTS, Decision, Strategy, StrategyParams, clamp_strength
from tradebot.strategy.indicators import Atr, Extreme


class DonchianParams(StrategyParams):
    entry: int = Field(20, ge=2, le=1_000, description="bars whose highest high a close must break")
    exit: int = Field(10, ge=2, le=1_000, description="bars whose lowest low a close must break to sell")
    atr_period: int = Field(14, ge=2, le=1_000, description="bars in the ATR that scales strength")
    full_strength_atr: float = Field(
        0.5, gt=0, le=20, description="breakout beyond the channel, in ATRs, at full strength"
    )

    @model_validator(mode="after")
    def _exit_within_entry(self) -> DonchianParams:
        if self.exit > self.entry:
            raise ValueError(f"exit ({self.exit}) must not exceed entry ({self.entry})")
        return self


class DonchianState(Struct):
    highs: Extreme
    lows: Extreme
    atr: Atr
    upper: float | None = None
    """Highest high of the `entry` bars before this one."""
    lower: float | None = None
    """Lowest low of the `exit` bars before this one."""
    long: bool = False


class DonchianBreakout(Strategy[DonchianParams, DonchianState]):
    name = "donchian_breakout"
    summary = "trend: buys a close above the N-bar high channel, sells below the M-bar low (ATR-scaled)"
    Params = DonchianParams
    State = DonchianState
    inputs = BAR_INPUTS
    overlays = ("upper", "lower")

    def readings(self, state: DonchianState) -> dict[str, float | None]:
        return {"upper": state.upper, "lower": state.lower, "atr": state.atr.value}

    def new_state(self) -> DonchianState:
        p = self.params
        return DonchianState(
            Extreme(p.entry, maximum=True), Extreme(p.exit, maximum=False), Atr(p.atr_period)
        )

    def decide(self, state: DonchianState, bar: Bar) -> Decision | None:
        upper, lower = state.upper, state.lower
        atr = state.atr.push(bar.high, bar.low, bar.close)
        state.upper, state.lower = state.highs.push(bar.high), state.lows.push(bar.low)
        if upper is None or lower is None or atr is None:
            return None
        p = self.params
        if not state.long and bar.close > upper:
            state.long = True
            breakout = (bar.close - upper) / atr if atr > 0 else 1.0
            return Decision(
                Side.BUY,
                clamp_strength(breakout / p.full_strength_atr),
                f"close {bar.close:.4f} broke the {p.entry}-bar high {upper:.4f} by {breakout:.2f} ATR",
            )
        if state.long and bar.close < lower:
            state.long = False
            return Decision(Side.SELL, 1.0, f"close {bar.close:.4f} broke the {p.exit}-bar low {lower:.4f}")
        return None
