"""The Backtest spec as a typed model: what the Job is built from, and what its CRD schema is made from.

Strategies and parameters are those of `tradebot.strategy.registry` (the CRD names the
strategies and refuses an unknown parameter; the model also checks every parameter
set of the grid against its bounds, as `tradebot backtest sweep` does before it runs).
A Backtest is one run: its spec is fixed once created (a Job's pods cannot change).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, AwareDatetime, Field, ValidationError, WithJsonSchema, model_validator

from tradebot.backtest.sweep import RANKABLE, combinations
from tradebot.providers.registry import DataSourceName
from tradebot.strategy.bars import TIMEFRAMES
from tradebot.strategy.registry import build_strategy
from tradebot_operator.spec import (
    MAX_PARAMS,
    DnsName,
    InvalidSpec,
    Resources,
    Rule,
    SpecModel,
    StrategyName,
    StrategyParams,
    TickerSymbol,
    describe,
    parameter_types,
    sized,
    unknown_parameter_rules,
)

MAX_SETS = 1_000  # parameter sets of one sweep (pods of one Indexed Job)
MAX_VALUES = 100


def _among(values: tuple[str, ...]) -> Callable[[str], str]:
    """A check that a string is one of `values` (kept where they are defined)."""

    def check(value: str) -> str:
        if value not in values:
            raise ValueError(f"{value!r} is not one of {', '.join(values)}")
        return value

    return check


TIMEFRAME_NAMES = tuple(TIMEFRAMES)
Timeframe = Annotated[
    str,
    AfterValidator(_among(TIMEFRAME_NAMES)),
    WithJsonSchema({"type": "string", "enum": list(TIMEFRAME_NAMES)}),
]
Rank = Annotated[
    str, AfterValidator(_among(RANKABLE)), WithJsonSchema({"type": "string", "enum": list(RANKABLE)})
]
Moment = Annotated[AwareDatetime, WithJsonSchema({"type": "string", "format": "date-time"})]


class StackRef(SpecModel):
    """A TradingStack in the Backtest's namespace."""

    name: DnsName = Field(description="Name of the TradingStack whose database and settings are used.")


Grid = Annotated[
    dict[str, list[Any]],
    WithJsonSchema(
        {
            "type": "object",
            "description": "A sweep: the values to try per parameter, e.g. {period: [7, 14, 21]}; every "
            f"combination is one index of an Indexed Job (at most {MAX_SETS}). Absent: one backtest.",
            "properties": {
                name: {
                    "type": "array",
                    "description": f"Values of {name}. {typed['description']}",
                    "minItems": 1,
                    "maxItems": MAX_VALUES,
                    "items": {**typed, "description": f"A value of {name}."},
                }
                for name, typed in parameter_types().items()
            },
        }
    ),
]


class BacktestSpec(SpecModel):
    """What to replay through which strategy: a stack's stored history, a strategy, its parameters or a
    grid of them, the symbols and the time range."""

    stack_ref: StackRef = Field(description="The TradingStack whose TimescaleDB holds the history.")
    strategy: StrategyName
    params: StrategyParams = Field(default_factory=dict, max_length=MAX_PARAMS)
    grid: Grid = Field(default_factory=dict, max_length=MAX_PARAMS)
    symbols: list[TickerSymbol] = Field(
        default_factory=list,
        max_length=1_000,
        description="Symbols to replay; empty: every symbol with data in the range.",
        json_schema_extra={"x-kubernetes-list-type": "set"},
    )
    source: DataSourceName | None = Field(
        None, description="Whose stored history to replay; absent: the stack's dataSource."
    )
    replay: Literal["ticks", "bars", "provider-bars"] = Field(
        "ticks", description="What to replay: stored ticks, 1-minute bars, or the provider's own bars."
    )
    start: Moment = Field(description="Start of the range (inclusive), e.g. 2026-01-05T00:00:00Z.")
    end: Moment = Field(description="End of the range (exclusive).")
    timeframe: Timeframe | None = Field(
        None, description="Bars the strategy evaluates (its `input` parameter); absent: its default."
    )
    cash: float | None = Field(None, gt=0, description="Starting cash; absent: the stack's STARTING_CASH.")
    parallelism: int = Field(2, ge=1, le=100, description="Parameter sets run at once (pods).")
    rank: Rank = Field("sharpe", description="The metric the best parameter set is chosen by.")
    resources: Resources = sized("250m", "256Mi", "1Gi")

    rules = (
        Rule(
            cel="timestamp(self.end) > timestamp(self.start)",
            message="end must be after start (an empty range replays nothing)",
            field_path=".end",
            check=lambda s: s.end > s.start,
        ),
        *unknown_parameter_rules("params", "strategy"),
        *unknown_parameter_rules("grid", "strategy"),
    )

    @model_validator(mode="after")
    def _valid_sets(self) -> BacktestSpec:
        total = 1
        for values in self.grid.values():
            total *= len(values)
        if total > MAX_SETS:
            raise ValueError(f"the grid makes {total} parameter sets; at most {MAX_SETS}")
        for params in self.parameter_sets():  # the registry names the parameter and its bound
            build_strategy(self.strategy, params)
        return self

    @property
    def fixed(self) -> dict[str, Any]:
        """The parameters every set shares (the timeframe is the strategy's `input`)."""
        if self.timeframe and "input" not in self.params:
            return {**self.params, "input": self.timeframe}
        return dict(self.params)

    def parameter_sets(self) -> list[dict[str, Any]]:
        """Every set in index order: the order `tradebot backtest sweep` gives them."""
        return combinations(self.grid, self.fixed) if self.grid else [self.fixed]


SPEC_RULE = Rule(cel="self == oldSelf", message="a Backtest's spec is fixed: create a new Backtest")


def parse_backtest(spec: Mapping[str, Any] | None) -> BacktestSpec:
    try:
        return BacktestSpec.model_validate(dict(spec or {}))
    except ValidationError as error:
        raise InvalidSpec(describe(error)) from None


def iso(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")
