"""Every strategy by name, and building the configured ones (STRATEGIES, STRATEGY_PARAMS).

Adding a strategy is one module with its class and one line in `STRATEGY_CLASSES`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from pydantic import ValidationError

from tradebot.strategy.base import Strategy
from tradebot.strategy.bollinger import BollingerReversion
from tradebot.strategy.donchian import DonchianBreakout
from tradebot.strategy.moving_average import MovingAverageCrossover
from tradebot.strategy.rsi import RsiMeanReversion

STRATEGY_CLASSES: dict[str, type[Strategy]] = {
    cls.name: cls for cls in (MovingAverageCrossover, RsiMeanReversion, BollingerReversion, DonchianBreakout)
}


class StrategyConfigError(ValueError):
    """A strategy or parameter was refused; the message names it and what is accepted."""


def strategy_class(name: str) -> type[Strategy]:
    try:
        return STRATEGY_CLASSES[name]
    except KeyError:
        raise StrategyConfigError(
            f"unknown strategy {name!r}; available: {', '.join(sorted(STRATEGY_CLASSES))}"
        ) from None


def describe_refusal(name: str, error: ValidationError) -> str:
    """One line per refused parameter, naming the strategy, the parameter and the bound."""
    lines = []
    for problem in error.errors(include_url=False):
        parameter = ".".join(str(part) for part in problem["loc"])
        message = problem["msg"].removeprefix("Value error, ")
        if problem["type"] == "extra_forbidden":
            known = ", ".join(strategy_class(name).Params.model_fields)
            lines.append(f"strategy {name!r} has no parameter {parameter!r}; its parameters: {known}")
        elif parameter:
            lines.append(f"strategy {name!r} parameter {parameter}={problem.get('input')!r}: {message}")
        else:
            lines.append(f"strategy {name!r}: {message}")
    return "\n".join(lines)


def build_strategy(name: str, params: Mapping[str, Any] | None = None) -> Strategy:
    """One strategy with its parameters validated; StrategyConfigError names what is wrong."""
    cls = strategy_class(name)
    try:
        parsed = cls.Params.model_validate(dict(params or {}))
    except ValidationError as error:
        raise StrategyConfigError(describe_refusal(name, error)) from None
    if parsed.input not in cls.inputs:
        raise StrategyConfigError(
            f"strategy {name!r} parameter input={parsed.input!r}: it accepts {', '.join(cls.inputs)}"
        )
    return cls(parsed)


def build_strategies(names: Iterable[str], params: Mapping[str, Mapping[str, Any]]) -> list[Strategy]:
    """The strategies a stack runs, in order.

    Parameters of a strategy that is not run are still checked, so a typo never waits
    for the day someone turns it on.
    """
    chosen = list(names)
    duplicates = sorted({n for n in chosen if chosen.count(n) > 1})
    if duplicates:
        raise StrategyConfigError(f"STRATEGIES names {', '.join(duplicates)} more than once")
    built = {name: build_strategy(name, params.get(name)) for name in [*chosen, *params]}
    return [built[name] for name in chosen]
