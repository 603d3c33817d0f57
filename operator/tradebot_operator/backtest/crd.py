"""The Backtest CustomResourceDefinition, generated from `backtest.spec.BacktestSpec` like the stacks' one.

`python -m tradebot_operator backtest-crd` writes charts/tradebot/crds/backtests.yaml (make crd);
a unit test keeps the two equal.
"""

from __future__ import annotations

from typing import Any

import yaml

from tradebot_operator import GROUP, VERSION
from tradebot_operator.backtest import KIND, PLURAL
from tradebot_operator.backtest.spec import SPEC_RULE, BacktestSpec
from tradebot_operator.crd import Schema, _int, _obj, _str, model_schema


def spec_schema() -> Schema:
    schema = model_schema(BacktestSpec)
    schema["x-kubernetes-validations"] = [*schema.get("x-kubernetes-validations", []), SPEC_RULE.schema()]
    return schema


def status_schema() -> Schema:
    condition = _obj(
        "Complete or Failed, as a Job has them.",
        {
            "type": _str("Complete or Failed."),
            "status": _str("True or False.", enum=["True", "False", "Unknown"]),
            "reason": _str("A CamelCase word for programs."),
            "message": _str("What is going on, for people."),
            "lastTransitionTime": _str("When status last changed.", format="date-time"),
        },
        required=["type", "status"],
    )
    anything = {"x-kubernetes-preserve-unknown-fields": True}
    return _obj(
        "Progress and the best parameter set, from the Job and the backtests table.",
        {
            "observedGeneration": _int("The spec generation it describes."),
            "phase": _str(
                "Pending (no Job yet), Running, Succeeded (every set has its result) or Failed.",
                enum=["Pending", "Running", "Succeeded", "Failed"],
            ),
            "progress": _str("Parameter sets with a stored result, of all, e.g. 3/12."),
            "sets": _int("Parameter sets (indexes of the Job)."),
            "completed": _int("Sets with a stored result."),
            "failed": _int("Sets whose pod failed (each retried once) without a result."),
            "active": _int("Pods running now."),
            "job": _str("Name of the Job."),
            "best": _obj(
                "The best set so far by spec.rank.",
                {
                    "index": _int("Its index (JOB_COMPLETION_INDEX)."),
                    "rank": _str("The metric it is best by."),
                    "params": {
                        "type": "object",
                        "description": "Its parameters.",
                        **anything,
                    },
                    "metrics": {
                        "type": "object",
                        "description": "Its metrics (return_pct, sharpe, max_drawdown_pct, ...).",
                        **anything,
                    },
                },
            ),
            "conditions": {
                "type": "array",
                "description": "Complete and Failed.",
                "items": condition,
                "x-kubernetes-list-type": "map",
                "x-kubernetes-list-map-keys": ["type"],
            },
        },
    )


def backtest_crd() -> dict[str, Any]:
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"{PLURAL}.{GROUP}"},
        "spec": {
            "group": GROUP,
            "scope": "Namespaced",
            "names": {
                "plural": PLURAL,
                "singular": "backtest",
                "kind": KIND,
                "listKind": f"{KIND}List",
                "shortNames": ["bt"],
                "categories": ["tradebot"],
            },
            "versions": [
                {
                    "name": VERSION,
                    "served": True,
                    "storage": True,
                    "subresources": {"status": {}},
                    "additionalPrinterColumns": [
                        {"name": "Stack", "type": "string", "jsonPath": ".spec.stackRef.name"},
                        {"name": "Strategy", "type": "string", "jsonPath": ".spec.strategy"},
                        {"name": "Phase", "type": "string", "jsonPath": ".status.phase"},
                        {"name": "Progress", "type": "string", "jsonPath": ".status.progress"},
                        {"name": "Best", "type": "string", "jsonPath": ".status.best.params", "priority": 1},
                        {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
                    ],
                    "schema": {
                        "openAPIV3Schema": _obj(
                            "A backtest or a parameter sweep of a strategy on a TradingStack's stored "
                            "history, run as a Kubernetes Job (a sweep: an Indexed Job, one index per "
                            "parameter set).",
                            {
                                "apiVersion": {"type": "string"},
                                "kind": {"type": "string"},
                                "metadata": {"type": "object"},
                                "spec": spec_schema(),
                                "status": status_schema(),
                            },
                            required=["spec"],
                        )
                    },
                }
            ],
        },
    }


def backtest_crd_yaml() -> str:
    header = (
        "# Generated by `python -m tradebot_operator backtest-crd`; "
        "edit operator/tradebot_operator/backtest/spec.py.\n"
    )
    return header + yaml.safe_dump(backtest_crd(), sort_keys=False, width=110)
