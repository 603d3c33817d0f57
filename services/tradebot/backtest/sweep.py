"""Parameter sweeps: every combination of a grid, ranked by a metric. Pure apart from the runs.

With a training cut-off the grid is ranked on the range before it, and the best
set is scored again on the range after it (out of sample), so a set that only
fits the past shows it.
"""

from __future__ import annotations

import itertools
import json
import math
from collections.abc import Mapping, Sequence
from typing import Any

RANKABLE = (
    "sharpe",
    "sortino",
    "return_pct",
    "cagr_pct",
    "profit_factor",
    "win_rate_pct",
    "max_drawdown_pct",
)


def parse_grid(specs: Sequence[str]) -> dict[str, list[Any]]:
    """`p=v1,v2` per option -> {p: [v1, v2]}; values are JSON where they parse as JSON."""
    grid: dict[str, list[Any]] = {}
    for spec in specs:
        name, sep, values = spec.partition("=")
        if not sep or not name or not values:
            raise ValueError(f"--grid {spec!r}: expected name=value1,value2,...")
        if name in grid:
            raise ValueError(f"--grid names {name!r} twice")
        grid[name] = [_value(v.strip()) for v in values.split(",") if v.strip()]
    if not grid:
        raise ValueError("--grid: give at least one, e.g. --grid period=7,14,21")
    return grid


def _value(text: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def combinations(
    grid: Mapping[str, Sequence[Any]], fixed: Mapping[str, Any] | None = None
) -> list[dict[str, Any]]:
    names = list(grid)
    return [
        {**(fixed or {}), **dict(zip(names, values, strict=True))}
        for values in itertools.product(*grid.values())
    ]


def score(summary: Mapping[str, Any], rank: str) -> float:
    """Higher is better; an undefined metric ranks last."""
    value = summary.get(rank)
    return float(value) if isinstance(value, int | float) and math.isfinite(value) else -math.inf


def ranked(rows: Sequence[dict[str, Any]], rank: str) -> list[dict[str, Any]]:
    return sorted(rows, key=lambda row: score(row["metrics"], rank), reverse=True)
