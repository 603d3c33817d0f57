"""`tradebot strategies`: what strategies there are, their parameters, and what a stack would run."""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer
from rich.table import Table

from tradebot.cli.common import fail, out
from tradebot.strategy.registry import STRATEGY_CLASSES, StrategyConfigError, build_strategy, strategy_class

app = typer.Typer(
    help=(
        "The **strategies**: pick them with STRATEGIES, set their parameters with STRATEGY_PARAMS "
        '(JSON, e.g. `{"rsi": {"period": 10, "input": "5m"}}`).'
    ),
    no_args_is_help=True,
)


@app.command("list")
def list_strategies(
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
) -> None:
    """Every strategy: what it trades on and the inputs it can evaluate."""
    rows: list[dict[str, Any]] = [
        {"name": name, "summary": cls.summary, "inputs": list(cls.inputs)}
        for name, cls in sorted(STRATEGY_CLASSES.items())
    ]
    if as_json:
        out.print_json(json.dumps(rows))
        return
    table = Table("strategy", "trades on", "inputs", title="Strategies (STRATEGIES=name,name)")
    for row in rows:
        table.add_row(row["name"], row["summary"], ", ".join(row["inputs"]))
    out.print(table)


@app.command("show")
def show(
    name: Annotated[str, typer.Argument(help="A strategy name (see `tradebot strategies list`).")],
    params: Annotated[
        str | None,
        typer.Option(
            "--params", help="Check these parameters too, as JSON: '{\"period\": 10}'.", show_default=False
        ),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
) -> None:
    """A strategy's parameters: type, default, bounds and meaning (and a check of `--params`)."""
    try:
        cls = strategy_class(name)
        chosen = json.loads(params) if params else {}
        if not isinstance(chosen, dict):
            raise StrategyConfigError(f"--params must be a JSON object, not {type(chosen).__name__}")
        strategy = build_strategy(name, chosen)
    except json.JSONDecodeError as error:
        raise fail(f"--params is not JSON: {error}") from None
    except StrategyConfigError as error:
        raise fail(str(error)) from None
    rows = cls.describe_params(cls.Params)
    values = strategy.params.model_dump(mode="json")
    for row in rows:
        row["value"] = values[row["name"]]
        if row["name"] == "input":
            row["bounds"] = "one of " + ", ".join(cls.inputs)
    if as_json:
        out.print_json(json.dumps({"name": name, "summary": cls.summary, "parameters": rows}))
        return
    title = f"{name}: {cls.summary}"
    table = Table("parameter", "type", "default", "bounds", "meaning", title=title, title_justify="left")
    if params:
        table.add_column("value")
    for row in rows:
        cells = [row["name"], row["type"], json.dumps(row["default"]), row["bounds"], row["description"]]
        table.add_row(*cells, *([json.dumps(row["value"])] if params else []))
    out.print(table)
    out.print(f'Set with STRATEGY_PARAMS=\'{{"{name}": {{"parameter": value}}}}\'', highlight=False)
