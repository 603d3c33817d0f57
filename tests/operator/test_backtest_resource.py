"""The Backtest resource without a cluster: its spec, its Job, and its status from results (issue 12)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from tradebot.backtest.sweep import combinations, parse_grid
from tradebot.cli.main import app
from tradebot_operator.backtest.crd import backtest_crd, spec_schema
from tradebot_operator.backtest.job import backtest_job, command, run_id
from tradebot_operator.backtest.results import Result, backtest_status, parse_indexes
from tradebot_operator.backtest.spec import parse_backtest
from tradebot_operator.builders import Stack
from tradebot_operator.spec import InvalidSpec

META = {"name": "tune", "namespace": "trading", "uid": "uid-9"}
STACK = Stack.from_body({"metadata": {"name": "demo", "namespace": "trading", "uid": "u"}, "spec": {}})
RANGE = {"start": "2026-01-05T00:00:00Z", "end": "2026-01-06T00:00:00Z"}


def backtest(**spec: Any) -> Any:
    return parse_backtest({"stackRef": {"name": "demo"}, "strategy": "rsi", **RANGE, **spec})


def test_a_sweep_is_an_indexed_job_with_one_index_per_parameter_set() -> None:
    spec = backtest(grid={"period": [7, 14], "oversold": [20, 30, 25]}, parallelism=4, timeframe="5m")
    job = backtest_job(META, spec, STACK)
    assert job["metadata"]["name"] == "tune" and job["metadata"]["namespace"] == "trading"
    assert (
        job["metadata"]["ownerReferences"][0] | {"kind": "Backtest", "uid": "uid-9"}
        == (job["metadata"]["ownerReferences"][0])
    )
    assert job["spec"]["completionMode"] == "Indexed"
    assert (job["spec"]["completions"], job["spec"]["parallelism"]) == (6, 4)
    assert job["spec"]["backoffLimitPerIndex"] == 1
    pod = job["spec"]["template"]["spec"]
    assert pod["restartPolicy"] == "Never" and pod["securityContext"]["runAsNonRoot"] is True
    container = pod["containers"][0]
    assert container["image"] == STACK.spec.images.tradebot
    assert container["envFrom"] == [{"configMapRef": {"name": "demo-config"}}]  # the stack's broker
    assert {
        "name": "DATABASE_URL",
        "valueFrom": {"secretKeyRef": {"name": "demo-db", "key": "DATABASE_URL"}},
    } in (container["env"])
    args = container["args"]
    assert args[:4] == ["backtest", "sweep", "--strategy", "rsi"]
    assert "--index" not in args  # each pod takes JOB_COMPLETION_INDEX from the Job controller
    assert args[args.index("--run") + 1] == "trading/tune/uid-9" == run_id(META)
    assert args[args.index("--source") + 1] == "synthetic"  # the stack's data source


def test_the_pods_enumerate_the_sets_in_the_operators_order() -> None:
    """Index k of the Job is set k of the status: both come from the same grid in the same order."""
    spec = backtest(grid={"period": [7, 14], "overbought": [70, 80]}, params={"oversold": 25})
    args = command(spec, STACK, "r")
    grids = [args[i + 1] for i, a in enumerate(args) if a == "--grid"]
    fixed = dict(args[i + 1].split("=", 1) for i, a in enumerate(args) if a == "--param")
    cli_sets = combinations(parse_grid(grids), {k: int(v) for k, v in fixed.items()})
    assert cli_sets == spec.parameter_sets()
    assert spec.parameter_sets()[3] == {"oversold": 25, "period": 14, "overbought": 80}


def test_the_job_command_is_one_the_cli_accepts() -> None:
    spec = backtest(grid={"period": [7, 14]}, symbols=["AAPL", "MSFT"], cash=25_000, replay="bars")
    args = command(spec, STACK, "r")
    # `--help` after the arguments: typer parses every option given (a typo would exit 2) and stops.
    result = CliRunner().invoke(app, [*args, "--help"])
    assert result.exit_code == 0, result.output


def test_a_single_backtest_is_one_pod() -> None:
    job = backtest_job(META, backtest(params={"period": 10}), STACK)
    assert job["spec"]["completionMode"] == "NonIndexed" and job["spec"]["completions"] == 1
    args = job["spec"]["template"]["spec"]["containers"][0]["args"]
    assert args[:3] == ["backtest", "--strategy", "rsi"] and "--param" in args and "period=10" in args


@pytest.mark.parametrize(
    ("spec", "says"),
    [
        ({"strategy": "macd"}, "unknown strategy 'macd'"),
        ({"grid": {"length": [3]}}, "strategy 'rsi' has no parameter 'length'"),
        ({"grid": {"period": [7, 1]}}, "strategy 'rsi' parameter period=1"),
        ({"params": {"oversold": 80, "overbought": 70}}, "strategy 'rsi'"),
        ({"end": "2026-01-04T00:00:00Z"}, "end must be after start"),
        ({"grid": {"period": list(range(2, 40)), "oversold": list(range(1, 40))}}, "at most 1000"),
        ({"timeframe": "2m"}, "'2m' is not one of 1m, 5m, 15m, 1h"),
    ],
)
def test_bad_backtests_are_refused_naming_the_problem(spec: dict[str, Any], says: str) -> None:
    with pytest.raises(InvalidSpec) as info:
        backtest(**spec)
    assert says in str(info.value)


def test_the_crd() -> None:
    crd = backtest_crd()["spec"]
    assert crd["names"]["kind"] == "Backtest" and crd["names"]["shortNames"] == ["bt"]
    assert crd["group"] == "tradebot.dev" and crd["versions"][0]["name"] == "v1alpha1"
    schema = spec_schema()
    assert schema["properties"]["strategy"]["enum"] == [
        "bollinger",
        "donchian_breakout",
        "rsi",
        "sma_crossover",
    ]
    rules = [r["rule"] for r in schema["x-kubernetes-validations"]]
    assert "self == oldSelf" in rules and "timestamp(self.end) > timestamp(self.start)" in rules
    assert any(r.startswith("self.strategy != 'rsi' || !has(self.grid)") for r in rules)
    period = schema["properties"]["grid"]["properties"]["period"]
    assert period["type"] == "array" and period["items"]["type"] == "integer" and period["minItems"] == 1
    assert sorted(schema["required"]) == ["end", "stackRef", "start", "strategy"]


SETS = [{"period": p} for p in (7, 14, 21, 28)]


def job(**status: Any) -> dict[str, Any]:
    return {"metadata": {"name": "tune"}, "status": status}


def test_progress_and_the_best_set_come_from_the_stored_results() -> None:
    results = [
        Result(0, {"sharpe": 0.5, "return_pct": 1.0, "trades": 4}),
        Result(2, {"sharpe": 1.5, "return_pct": 0.5, "trades": 3, "profit_factor": None}),
    ]
    status = backtest_status(SETS, results, job(active=2), "sharpe")
    assert status["phase"] == "Running" and status["progress"] == "2/4" and status["active"] == 2
    assert status["best"] == {
        "index": 2,
        "params": {"period": 21},
        "rank": "sharpe",
        "metrics": {"sharpe": 1.5, "return_pct": 0.5, "trades": 3},  # an undefined metric is left out
    }
    by_return = backtest_status(SETS, results, job(active=2), "return_pct")
    assert by_return["best"]["index"] == 0
    done = backtest_status(SETS, [*results, Result(1, {"sharpe": 0.1}), Result(3, {})], job(), "sharpe")
    assert done["phase"] == "Succeeded" and done["progress"] == "4/4"
    assert {c["type"]: c["status"] for c in done["conditions"]} == {"Complete": "True", "Failed": "False"}


def test_failures_and_missing_results_are_said() -> None:
    partial = backtest_status(SETS, [Result(0, {})], job(failedIndexes="1,3", active=1), "sharpe")
    assert partial["failed"] == 2 and "sets 1,3 failed" in partial["conditions"][0]["message"]
    failed = job(
        failedIndexes="1-3",
        conditions=[
            {
                "type": "Failed",
                "status": "True",
                "reason": "FailedIndexes",
                "message": "Job has failed indexes",
            }
        ],
    )
    status = backtest_status(SETS, [Result(0, {})], failed, "sharpe")
    assert status["phase"] == "Failed" and status["conditions"][1]["reason"] == "FailedIndexes"
    assert "no result for sets 1,2,3" in status["conditions"][1]["message"]
    complete = job(conditions=[{"type": "Complete", "status": "True"}])
    waiting = backtest_status(SETS, [], complete, "sharpe")
    assert waiting["phase"] == "Running" and waiting["conditions"][0]["reason"] == "ResultsMissing"
    assert backtest_status(SETS, None, job(), "sharpe")["conditions"][0]["reason"] == "DatabaseUnavailable"
    missing = backtest_status(SETS, [], None, "sharpe", ("StackNotFound", "TradingStack demo not found"))
    assert missing["phase"] == "Pending" and missing["conditions"][0]["reason"] == "StackNotFound"
    assert parse_indexes("0-2,5") == {0, 1, 2, 5} and parse_indexes("") == set()


def test_the_example_backtest_is_valid() -> None:
    manifest = yaml.safe_load((Path(__file__).resolve().parents[2] / "k8s" / "backtest.yaml").read_text())
    assert manifest["kind"] == "Backtest" and manifest["apiVersion"] == "tradebot.dev/v1alpha1"
    spec = parse_backtest(manifest["spec"])
    assert len(spec.parameter_sets()) == 6 and spec.parameter_sets()[0]["input"] == "1m"
