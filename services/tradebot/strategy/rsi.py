"""RSI mean reversion: buy when RSI climbs back out of oversold, sell when it falls out of overbought.

Wilder's RSI on each bar's close. Waiting for the exit from the zone (instead of
buying on the way in) avoids catching a falling knife; strength grows with how
deep the RSI went while in the zone.
"""

from __future__ import annotations

from msgspec import Struct
from pydantic import Field, model_validator

from tradebot.common.models import Side
from tradebot.strategy.bars import Bar
from tradebot.strategy.base import EVERY_INPUT, Decision, Strategy, StrategyParams, clamp_strength
from tradebot.strategy.indicators import Rsi


class RsiParams(StrategyParams):
    period: int = Field(14, ge=2, le=1_000, description="bars in Wilder's RSI")
    oversold: float = Field(30, gt=0, lt=100, description="RSI at or below this is oversold")
    overbought: float = Field(70, gt=0, lt=100, description="RSI at or above this is overbought")

    @model_validator(mode="after")
    def _zones_in_order(self) -> RsiParams:
        if self.oversold >= self.overbought:
            raise ValueError(f"oversold ({self.oversold:g}) must be below overbought ({self.overbought:g})")
        return self


class RsiState(Struct):
    rsi: Rsi
    zone: int = 0
    """-1 oversold, 1 overbought, 0 between."""
    extreme: float = 50.0
    """The deepest RSI of the current zone."""


class RsiMeanReversion(Strategy[RsiParams, RsiState]):
    name = "rsi"
    summary = "mean reversion: buys when RSI leaves oversold, sells when it leaves overbought"
    Params = RsiParams
    State = RsiState
    inputs = EVERY_INPUT

    def readings(self, state: RsiState) -> dict[str, float | None]:
        return {"rsi": state.rsi.current()}

    def new_state(self) -> RsiState:
        return RsiState(Rsi(self.params.period))

    def decide(self, state: RsiState, bar: Bar) -> Decision | None:
        rsi = state.rsi.push(bar.close)
        if rsi is None:
            return None
        p = self.params
        zone = -1 if rsi <= p.oversold else 1 if rsi >= p.overbought else 0
        previous, state.zone = state.zone, zone
        if zone != 0:
            state.extreme = rsi if previous != zone else (min if zone < 0 else max)(state.extreme, rsi)
            return None
        if previous == -1:
            depth = (p.oversold - state.extreme) / p.oversold
            return Decision(
                Side.BUY,
                clamp_strength(0.5 + depth * 2),
                f"RSI({p.period}) {rsi:.1f} rose out of oversold {p.oversold:g} (low {state.extreme:.1f})",
            )
        if previous == 1:
            depth = (state.extreme - p.overbought) / (100 - p.overbought)
            return Decision(
                Side.SELL,
                clamp_strength(0.5 + depth * 2),
                f"RSI({p.period}) {rsi:.1f} fell out of overbought {p.overbought:g} "
                f"(high {state.extreme:.1f})",
            )
        return None
