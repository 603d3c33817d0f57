"""`tradebot strategies list/show`, and the service refusing bad strategy settings at start."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from typer.testing import CliRunner

from tradebot.cli.main import app

runner = CliRunner()


def test_list_names_every_strategy_with_its_inputs():
    result = runner.invoke(app, ["strategies", "list", "--json"])
    assert result.exit_code == 0
    rows = {row["name"]: row for row in json.loads(result.stdout)}
    assert set(rows) == {"sma_crossover", "rsi", "bollinger", "donchian_breakout"}
    assert "trades" not in rows["donchian_breakout"]["inputs"] and "quotes" in rows["rsi"]["inputs"]


def test_show_prints_defaults_bounds_descriptions_and_checks_params():
    result = runner.invoke(app, ["strategies", "show", "rsi", "--json", "--params", '{"period": 9}'])
    assert result.exit_code == 0
    shown = {row["name"]: row for row in json.loads(result.stdout)["parameters"]}
    assert shown["period"] == {"name": "period", "type": "integer", "default": 14, "bounds": ">= 2; <= 1000",
                               "description": "bars in Wilder's RSI", "value": 9}  # fmt: skip
    table = runner.invoke(app, ["strategies", "show", "sma_crossover"])
    assert table.exit_code == 0 and "slow" in table.stdout and "STRATEGY_PARAMS" in table.stdout


def test_show_refuses_with_the_strategy_parameter_and_bound():
    cases = {
        ("magic",): "unknown strategy 'magic'; available: bollinger, donchian_breakout, rsi, sma_crossover",
        (
            "rsi",
            "--params",
            '{"period": 1}',
        ): "strategy 'rsi' parameter period=1: Input should be greater than",
        ("rsi", "--params", '{"speed": 1}'): "strategy 'rsi' has no parameter 'speed'",
        ("rsi", "--params", "{oops"): "--params is not JSON",
        ("rsi", "--params", "[1]"): "--params must be a JSON object",
    }
    for args, message in cases.items():
        result = CliRunner().invoke(app, ["strategies", "show", *args], terminal_width=200)
        assert result.exit_code == 2, args
        assert message in " ".join(result.stderr.split()), (args, result.stderr)


def test_service_refuses_unknown_strategies_and_bad_params_at_start(tmp_path):
    for env, message in [
        ({"STRATEGIES": "rsi,magic"}, "STRATEGIES='rsi,magic' is invalid: unknown strategy 'magic'"),
        ({"STRATEGY_PARAMS": '{"rsi": {"overbought": 101}}'}, "strategy 'rsi' parameter overbought=101:"),
        ({"STRATEGY_PARAMS": "{nope"}, "STRATEGY_PARAMS='{nope' is invalid: not JSON"),
    ]:  # fmt: skip
        result = subprocess.run(
            [sys.executable, "-m", "tradebot", "service", "strategy"],
            env={**os.environ, **env}, cwd=tmp_path, capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        assert result.returncode == 2, env
        assert message in " ".join(result.stderr.split()), (env, result.stderr)
