"""Pure: the Job of a Backtest — one pod per parameter set, with the stack's image, settings and database.

A single backtest is a one-pod Job running `tradebot backtest`; a sweep is an Indexed
Job whose pod k runs `tradebot backtest sweep ... ` with k from JOB_COMPLETION_INDEX
(set by the Job controller), so each index knows its parameter set from the same grid.
Every pod stores its run tagged with `run_id`, which is how the results are found.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from tradebot_operator import GROUP, VERSION
from tradebot_operator.backtest import KIND
from tradebot_operator.backtest.spec import BacktestSpec, iso
from tradebot_operator.builders.access import BACKTEST_COMPONENT
from tradebot_operator.builders.backup import job_spec
from tradebot_operator.builders.common import Obj, Stack, labels, resources
from tradebot_operator.builders.config import config_name
from tradebot_operator.spec import Backup

COMPONENT = BACKTEST_COMPONENT
BACKTEST_LABEL = "tradebot.dev/backtest"
# A day at most per pod of a run; a Job that takes longer has a problem to look at.
DEADLINE_SECONDS = 24 * 3600


def run_id(meta: Mapping[str, Any]) -> str:
    """The tag of a Backtest's rows in the `backtests` table: `<namespace>/<name>/<uid>`."""
    return f"{meta['namespace']}/{meta['name']}/{meta['uid']}"


def _value(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"))


def command(spec: BacktestSpec, stack: Stack, run: str) -> list[str]:
    """The `tradebot` arguments of every pod (a sweep's pods differ only by JOB_COMPLETION_INDEX)."""
    args = ["backtest", "sweep"] if spec.grid else ["backtest"]
    args += ["--strategy", spec.strategy]
    for name, values in spec.grid.items():
        args += ["--grid", f"{name}={','.join(_value(v) for v in values)}"]
    for name, value in spec.fixed.items():
        args += ["--param", f"{name}={_value(value)}"]
    args += ["--source", spec.source or stack.spec.data_source, "--replay", spec.replay]
    args += ["--start", iso(spec.start), "--end", iso(spec.end)]
    if spec.symbols:
        args += ["--symbols", ",".join(spec.symbols)]
    if spec.cash is not None:
        args += ["--cash", repr(spec.cash)]
    return [*args, "--run", run, "--json"]


def owner(meta: Mapping[str, Any]) -> Obj:
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": KIND,
        "name": meta["name"],
        "uid": meta["uid"],
        "controller": True,
        "blockOwnerDeletion": True,
    }


def backtest_job(meta: Mapping[str, Any], spec: BacktestSpec, stack: Stack) -> Obj:
    """The Job (named as the Backtest): a backup Job's pod (the stack's image, hardening, database URL)
    with the backtest's command and resources instead of the backup volume."""
    sets = len(spec.parameter_sets())
    pod_labels = {**labels(stack, COMPONENT), BACKTEST_LABEL: meta["name"]}
    template = job_spec(stack, Backup())["template"]
    container = template["spec"]["containers"][0]
    container.update(
        name=COMPONENT,
        args=command(spec, stack, run_id(meta)),
        resources=resources(spec.resources),
        envFrom=[{"configMapRef": {"name": config_name(stack)}}],  # the stack's broker, limits, costs
        volumeMounts=[m for m in container["volumeMounts"] if m["name"] == "tmp"],
    )
    template["spec"]["volumes"] = [v for v in template["spec"]["volumes"] if v["name"] == "tmp"]
    template["metadata"] = {"labels": dict(pod_labels)}
    # Exit status 2 is bad input (a symbol without data, ...): retrying cannot help.
    refused = {"onExitCodes": {"containerName": COMPONENT, "operator": "In", "values": [2]}}
    job: Obj = {
        "completions": sets,
        "parallelism": min(spec.parallelism, sets),
        "activeDeadlineSeconds": DEADLINE_SECONDS,
        "template": template,
    }
    if spec.grid:
        job |= {
            "completionMode": "Indexed",
            "backoffLimitPerIndex": 1,
            "podFailurePolicy": {"rules": [{"action": "FailIndex", **refused}]},
        }
    else:
        job |= {
            "completionMode": "NonIndexed",
            "backoffLimit": 1,
            "podFailurePolicy": {"rules": [{"action": "FailJob", **refused}]},
        }
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {
            "name": meta["name"],
            "namespace": meta["namespace"],
            "labels": pod_labels,
            "ownerReferences": [owner(meta)],
        },
        "spec": job,
    }
