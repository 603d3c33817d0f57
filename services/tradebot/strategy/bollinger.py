"""Bollinger mean reversion: buy when the close comes back inside the lower band, sell at the mean.

Bands are the SMA ± `width` standard deviations of the closes. A close below the
lower band arms the rule; the first close back above it buys (the excursion is
over); a close above the middle band sells. Strength grows with how far below
the band the excursion went, in band widths.
"""

from __future__ import annotations

from msgspec import Struct
from pydantic import Field

from tradebot.common.models import Side
from tradebot.strategy.bars import Bar
from tradebot.strategy.base import EVERY_INPUT, Decision, Strategy, StrategyParams, clamp_strength
from tradebot.strategy.indicators import Bands


class BollingerParams(StrategyParams):
    period: int = Field(20, ge=2, le=1_000, description="bars in the average and the deviation")
    width: float = Field(2.0, gt=0, le=10, description="band distance from the average, in deviations")


class BollingerState(Struct):
    bands: Bands
    below: bool = False
    lowest: float = 0.0
    """The lowest close of the excursion below the lower band."""
    long: bool = False


class BollingerReversion(Strategy[BollingerParams, BollingerState]):
    name = "bollinger"
    summary = "mean reversion: buys a close back inside the lower Bollinger band, sells above the middle"
    Params = BollingerParams
    State = BollingerState
    inputs = EVERY_INPUT
    overlays = ("lower", "middle", "upper")

    def readings(self, state: BollingerState) -> dict[str, float | None]:
        bands = state.bands.current()
        return dict(zip(self.overlays, bands or (None, None, None), strict=True))

    def new_state(self) -> BollingerState:
        return BollingerState(Bands.of(self.params.period, self.params.width))

    def decide(self, state: BollingerState, bar: Bar) -> Decision | None:
        bands = state.bands.push(bar.close)
        if bands is None:
            return None
        lower, middle, upper = bands
        close, p = bar.close, self.params
        if close < lower:
            state.lowest = close if not state.below else min(state.lowest, close)
            state.below = True
            return None
        if state.below:
            state.below = False
            state.long = True
            depth = (lower - state.lowest) / max(upper - lower, 1e-12) * 4
            return Decision(
                Side.BUY,
                clamp_strength(0.5 + depth),
                f"close {close:.4f} back above lower band {lower:.4f} (BB({p.period}, {p.width:g}))",
            )
        if state.long and close > middle:
            state.long = False
            return Decision(Side.SELL, 1.0, f"close {close:.4f} above middle band {middle:.4f}")
        return None
