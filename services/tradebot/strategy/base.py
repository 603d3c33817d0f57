"""The strategy interface: a class with its parameters, its input and a pure rule per symbol.

A strategy declares
* `Params`: a pydantic model of its parameters (defaults, bounds, descriptions) —
  what `tradebot strategies show NAME` prints and STRATEGY_PARAMS sets;
* `inputs`: what it may evaluate, chosen per stack with the `input` parameter:
  bars built from trades (`1m`, `5m`, `15m`, `1h`), the provider's own 1-minute
  bars (`provider_1m`), every trade (`trades`) or every quote midpoint (`quotes`);
* `State`: a msgspec struct holding one symbol's indicators (checkpointed as is);
* `decide(state, bar)`: the rule, returning a `Decision` or None. No I/O, no clock,
  so the same class runs in the live service and in a backtest with the same result.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any, ClassVar, Generic, Literal, NamedTuple, TypeVar

from msgspec import Struct
from pydantic import BaseModel, ConfigDict, Field

from tradebot.common.models import Side
from tradebot.strategy.bars import TIMEFRAMES, Bar

InputName = Literal["1m", "5m", "15m", "1h", "provider_1m", "trades", "quotes"]
BAR_INPUTS: tuple[InputName, ...] = ("1m", "5m", "15m", "1h", "provider_1m")
EVERY_INPUT: tuple[InputName, ...] = (*BAR_INPUTS, "trades", "quotes")


def input_seconds(name: str) -> int:
    """Bar width of an input (1-minute bars for provider_1m, 0 for single ticks)."""
    return 60 if name == "provider_1m" else TIMEFRAMES.get(name, 0)


class StrategyParams(BaseModel):
    """Base of every strategy's parameters: unknown names are refused, values are final."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    input: InputName = Field(
        "1m",
        description="bars of 1m, 5m, 15m or 1h built from trades, the provider's 1-minute bars "
        "(provider_1m), every trade (trades) or every quote midpoint (quotes)",
    )


class Decision(NamedTuple):
    side: Side
    strength: float
    reason: str


P = TypeVar("P", bound=StrategyParams)
S = TypeVar("S", bound=Struct)


class Strategy(ABC, Generic[P, S]):
    """One rule, evaluated per symbol on the input its parameters name."""

    name: ClassVar[str]
    summary: ClassVar[str]
    """What it trades on, in one sentence (listed by `tradebot strategies list`)."""
    Params: ClassVar[type[StrategyParams]]
    State: ClassVar[type[Struct]]
    inputs: ClassVar[tuple[InputName, ...]] = BAR_INPUTS
    overlays: ClassVar[tuple[str, ...]] = ()
    """Readings in price units, drawn over the chart (the others are shown beside it)."""

    def __init__(self, params: P) -> None:
        self.params = params

    @property
    def input(self) -> InputName:
        return self.params.input

    def fingerprint(self) -> str:
        """Name and parameters: a checkpointed state is only reused by the same configuration."""
        return f"{self.name}:{self.params.model_dump_json()}"

    @abstractmethod
    def new_state(self) -> S:
        """A fresh state for one symbol."""

    @abstractmethod
    def decide(self, state: S, bar: Bar) -> Decision | None:
        """Update `state` with a closed bar (or one tick as a bar) and say what to do, if anything."""

    def readings(self, state: S) -> dict[str, float | None]:
        """The indicators of one symbol's state now, by name (None while warming up)."""
        return {}

    @staticmethod
    def describe_params(params: type[StrategyParams]) -> list[dict[str, Any]]:
        """Each parameter with its type, default, bounds and description (for the CLI and docs)."""
        rows = []
        schema = params.model_json_schema()
        for name, prop in schema["properties"].items():
            bounds = [
                f"{symbol} {prop[key]:g}"
                for key, symbol in (("minimum", ">="), ("exclusiveMinimum", ">"), ("maximum", "<="),
                                    ("exclusiveMaximum", "<"))
                if key in prop
            ]  # fmt: skip
            if "enum" in prop:
                bounds.append("one of " + ", ".join(map(str, prop["enum"])))
            rows.append(
                {
                    "name": name,
                    "type": prop.get("type", "string"),
                    "default": prop.get("default"),
                    "bounds": "; ".join(bounds),
                    "description": prop.get("description", ""),
                }
            )
        return rows


def clamp_strength(value: float) -> float:
    return round(min(1.0, max(0.0, value)), 4)
