"""The `Backtest` resource (issue 12) on the real control plane, with a real PostgreSQL.

The operator runs in-process as the chart's ServiceAccount; kwok plays the kubelet, so the
Job's pods run no container. What a pod would do is done here with the pod's own command:
`tradebot backtest sweep ...` from the Job's spec, with the stack's ConfigMap as environment
and JOB_COMPLETION_INDEX set, against a real database seeded with ticks. Its rows in the
`backtests` table are what the operator turns into the Backtest's status.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from kubernetes import client, config
from kubernetes.client.rest import ApiException

from k8s.controlplane import ControlPlane
from k8s.operator_support import (
    SERVICE_ACCOUNT,
    OperatorThread,
    Stacks,
    grant_operator_rbac,
    install_crds,
    operator_config,
    wait_for,
)
from support.servers import create_database, drop_database
from tradebot.market_data.synthetic import SyntheticMarket
from tradebot.storage.schema import ensure_schema
from tradebot.storage.writer import BatchWriter
from tradebot_operator.apply import get
from tradebot_operator.kube import Kube, load_configuration

pytestmark = pytest.mark.k8s
START = datetime(2026, 1, 5, 14, 30, tzinfo=UTC)
MINUTES = 60
RANGE = {"start": "2026-01-05T14:30:00Z", "end": "2026-01-05T15:30:00Z"}
TRADEBOT = str(Path(sys.executable).with_name("tradebot"))


async def seed(database_url: str) -> None:
    market = SyntheticMarket(["AAPL", "MSFT"], 5.0, seed=2)
    ticks = [t for i in range(MINUTES * 12) for t in market.next_ticks(2, START + timedelta(seconds=5 * i))]
    conn = await asyncpg.connect(database_url)
    try:
        await BatchWriter(conn, await ensure_schema(conn, ("synthetic",))).write(ticks)
    finally:
        await conn.close()


@pytest.fixture(scope="module")
def database(postgres_server_url: str) -> Iterator[str]:
    name, url = asyncio.run(create_database(postgres_server_url))
    asyncio.run(seed(url))
    yield url
    asyncio.run(drop_database(postgres_server_url, name))


@pytest.fixture(scope="module")
def cluster(
    control_plane: ControlPlane, redis_server_url: str, database: str
) -> Iterator[tuple[str, client.ApiClient, Kube]]:
    """A namespace watched by an operator that reaches every stack's database at the test's."""
    api = config.new_client_from_config(config_file=str(control_plane.admin_kubeconfig))
    install_crds(api)
    namespace = f"bt-{uuid.uuid4().hex[:8]}"
    control_plane.service_account_kubeconfig(namespace, SERVICE_ACCOUNT, create=True)
    grant_operator_rbac(api, namespace)
    kubeconfig = control_plane.service_account_kubeconfig(namespace, SERVICE_ACCOUNT)
    settings = operator_config(kubeconfig, namespace, redis_server_url, database_url=database)
    running = OperatorThread(settings).start()
    admin = Kube(load_configuration(str(control_plane.admin_kubeconfig)))
    try:
        yield namespace, api, admin
    finally:
        running.stop()
        admin.close()
        client.CoreV1Api(api).delete_namespace(namespace)
        api.close()


class Backtests:
    def __init__(self, api: client.ApiClient, namespace: str) -> None:
        self.custom, self.namespace = client.CustomObjectsApi(api), namespace

    def create(self, name: str, spec: dict[str, Any]) -> dict[str, Any]:
        body = {
            "apiVersion": "tradebot.dev/v1alpha1",
            "kind": "Backtest",
            "metadata": {"name": name},
            "spec": spec,
        }
        # Strict, as kubectl does by default: a field the schema does not have is refused, not dropped.
        return self.custom.create_namespaced_custom_object(
            "tradebot.dev", "v1alpha1", self.namespace, "backtests", body, field_validation="Strict"
        )

    def status(self, name: str) -> dict[str, Any]:
        got = self.custom.get_namespaced_custom_object(
            "tradebot.dev", "v1alpha1", self.namespace, "backtests", name
        )
        return got.get("status") or {}

    def patch(self, name: str, spec: dict[str, Any]) -> None:
        self.custom.patch_namespaced_custom_object(
            "tradebot.dev", "v1alpha1", self.namespace, "backtests", name, {"spec": spec}
        )

    def reason(self, name: str) -> str:
        return next(
            (c["reason"] for c in self.status(name).get("conditions", []) if c["type"] == "Complete"), ""
        )


@pytest.fixture(scope="module")
def stack(control_plane: ControlPlane, cluster: tuple[str, client.ApiClient, Kube]) -> str:
    namespace, api, admin = cluster
    control_plane.create_volumes(2, size="10Gi")
    Stacks(api, namespace).create("hist", {"symbols": ["AAPL", "MSFT"]})
    wait_for("the stack's ConfigMap", lambda: get(admin, "ConfigMap", namespace, "hist-config"))
    return "hist"


def run_pod(admin: Kube, namespace: str, job: dict[str, Any], index: int, database: str) -> dict[str, Any]:
    """What pod `index` of the Job runs, run here: its args, the stack's ConfigMap, its index."""
    container = job["spec"]["template"]["spec"]["containers"][0]
    config_map = container["envFrom"][0]["configMapRef"]["name"]
    env = {
        **{k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "TMPDIR")},
        **get(admin, "ConfigMap", namespace, config_map)["data"],
        "DATABASE_URL": database,
        "JOB_COMPLETION_INDEX": str(index),
    }
    done = subprocess.run(
        [TRADEBOT, *container["args"]], env=env, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr
    printed: dict[str, Any] = json.loads(done.stdout)
    return printed


async def stored(database: str, run: str) -> dict[int, dict[str, Any]]:
    conn = await asyncpg.connect(database)
    try:
        rows = await conn.fetch("SELECT run_index, metrics FROM backtests WHERE run = $1", run)
    finally:
        await conn.close()
    return {row["run_index"]: json.loads(row["metrics"]) for row in rows}


def test_a_sweep_is_an_indexed_job_and_its_results_fill_the_status(
    control_plane: ControlPlane, cluster: tuple[str, client.ApiClient, Kube], stack: str, database: str
) -> None:
    namespace, api, admin = cluster
    backtests = Backtests(api, namespace)
    created = backtests.create(
        "tune",
        {"stackRef": {"name": stack}, "strategy": "sma_crossover", "grid": {"fast": [2, 3], "slow": [8, 12]},
         "symbols": ["AAPL", "MSFT"], "parallelism": 2, "rank": "return_pct", **RANGE},
    )  # fmt: skip
    job = wait_for("the Job", lambda: get(admin, "Job", namespace, "tune"))
    spec = job["spec"]
    assert (spec["completionMode"], spec["completions"], spec["parallelism"]) == ("Indexed", 4, 2)
    assert job["metadata"]["ownerReferences"][0]["uid"] == created["metadata"]["uid"]
    args = spec["template"]["spec"]["containers"][0]["args"]
    assert args[:2] == ["backtest", "sweep"] and "fast=2,3" in args and "slow=8,12" in args
    run = f"{namespace}/tune/{created['metadata']['uid']}"
    assert args[args.index("--run") + 1] == run
    wait_for("no results yet", lambda: backtests.status("tune").get("progress") == "0/4")

    first = [run_pod(admin, namespace, job, k, database) for k in (0, 2)]
    assert [p["params"] for p in first] == [{"fast": 2, "slow": 8}, {"fast": 3, "slow": 8}]
    wait_for("two of four", lambda: backtests.status("tune").get("progress") == "2/4")
    assert backtests.status("tune")["phase"] == "Running"

    for k in (1, 3):
        run_pod(admin, namespace, job, k, database)
    status = wait_for(
        "Succeeded", lambda: (st := backtests.status("tune")).get("phase") == "Succeeded" and st, timeout=60
    )
    results = asyncio.run(stored(database, run))
    assert sorted(results) == [0, 1, 2, 3] and status["progress"] == "4/4"
    best = max(results, key=lambda k: results[k]["return_pct"])
    grid = [{"fast": f, "slow": s} for f in (2, 3) for s in (8, 12)]
    assert status["best"]["index"] == best and status["best"]["params"] == grid[best]
    assert status["best"]["rank"] == "return_pct"
    assert status["best"]["metrics"]["return_pct"] == results[best]["return_pct"]
    assert status["best"]["metrics"]["trades"] == results[best]["trades"]
    assert {c["type"]: c["status"] for c in status["conditions"]} == {"Complete": "True", "Failed": "False"}

    table = subprocess.run([control_plane.kubectl, "get", "bt", "-n", namespace], env=control_plane.env(),
                           capture_output=True, text=True, timeout=60).stdout  # fmt: skip
    header, row = table.splitlines()[0].split(), table.splitlines()[1].split()
    assert header == ["NAME", "STACK", "STRATEGY", "PHASE", "PROGRESS", "AGE"]
    assert row[:5] == ["tune", "hist", "sma_crossover", "Succeeded", "4/4"]


def test_a_single_backtest_waits_for_its_stack_then_runs_one_pod(
    control_plane: ControlPlane, cluster: tuple[str, client.ApiClient, Kube], database: str
) -> None:
    namespace, api, admin = cluster
    backtests = Backtests(api, namespace)
    backtests.create(
        "once",
        {
            "stackRef": {"name": "later"},
            "strategy": "rsi",
            "params": {"period": 10},
            "timeframe": "1m",
            **RANGE,
        },
    )
    wait_for("StackNotFound", lambda: backtests.reason("once") == "StackNotFound")
    assert backtests.status("once")["phase"] == "Pending"
    assert "TradingStack later not found" in backtests.status("once")["conditions"][0]["message"]
    assert not get(admin, "Job", namespace, "once")

    control_plane.create_volumes(2, size="10Gi")
    Stacks(api, namespace).create("later", {"symbols": ["AAPL", "MSFT"]})
    job = wait_for("the Job", lambda: get(admin, "Job", namespace, "once"))
    assert (job["spec"]["completionMode"], job["spec"]["completions"]) == ("NonIndexed", 1)
    wait_for("the stack's ConfigMap", lambda: get(admin, "ConfigMap", namespace, "later-config"))
    container = job["spec"]["template"]["spec"]["containers"][0]
    assert container["args"][:3] == ["backtest", "--strategy", "rsi"]
    printed = run_pod(admin, namespace, job, 0, database)
    assert printed["params"]["rsi"]["period"] == 10 and printed["params"]["rsi"]["input"] == "1m"
    status = wait_for(
        "Succeeded", lambda: (st := backtests.status("once")).get("phase") == "Succeeded" and st
    )
    assert status["best"]["index"] == 0 and status["best"]["params"] == {"period": 10, "input": "1m"}
    assert status["best"]["metrics"]["events"] == printed["events"]


@pytest.mark.parametrize(
    ("spec", "says"),
    [
        ({"strategy": "macd"}, 'Unsupported value: "macd"'),
        ({"strategy": "rsi", "grid": {"fast": [3, 5]}}, "strategy 'rsi' has no parameter 'fast'"),
        ({"strategy": "rsi", "params": {"lenght": 3}}, 'unknown field "spec.params.lenght"'),
        ({"strategy": "rsi", "grid": {"period": ["x"]}}, "spec.grid.period[0]"),
        ({"strategy": "rsi", "grid": {"period": [1, 14]}}, "spec.grid.period[0]: Invalid value: 1"),
        ({"strategy": "rsi", "start": "2026-01-06T00:00:00Z"}, "end must be after start"),
        ({"strategy": "rsi", "grid": {"period": []}}, "spec.grid.period"),
        ({"strategy": "rsi", "parallelism": 0}, "spec.parallelism"),
    ],
    ids=[
        "unknown-strategy",
        "another-strategys-parameter",
        "unknown-parameter",
        "wrong-type",
        "out-of-bounds",
        "empty-range",
        "empty-grid",
        "no-pods",
    ],
)
def test_bad_backtests_are_refused_by_the_api_server(
    cluster: tuple[str, client.ApiClient, Kube], spec: dict[str, Any], says: str
) -> None:
    namespace, api, _ = cluster
    with pytest.raises(ApiException) as info:
        Backtests(api, namespace).create(
            f"bad-{uuid.uuid4().hex[:6]}", {"stackRef": {"name": "hist"}, **RANGE, **spec}
        )
    assert info.value.status in (400, 422)  # 400: an unknown field under strict field validation
    assert says in json.loads(info.value.body)["message"]


def test_a_backtest_is_fixed_once_created_and_a_set_the_registry_refuses_fails_it(
    cluster: tuple[str, client.ApiClient, Kube], stack: str
) -> None:
    namespace, api, admin = cluster
    backtests = Backtests(api, namespace)
    backtests.create(
        "fixed",
        {
            "stackRef": {"name": stack},
            "strategy": "rsi",
            "grid": {"oversold": [20, 80]},
            "params": {"overbought": 70},
            **RANGE,
        },
    )
    wait_for("Failed: InvalidSpec", lambda: backtests.reason("fixed") == "InvalidSpec")
    assert backtests.status("fixed")["phase"] == "Failed"
    message = backtests.status("fixed")["conditions"][0]["message"]
    assert "strategy 'rsi': oversold (80) must be below overbought (70)" in message
    assert not get(admin, "Job", namespace, "fixed")
    with pytest.raises(ApiException) as info:
        backtests.patch("fixed", {"grid": {"period": [7, 14]}})
    assert "a Backtest's spec is fixed: create a new Backtest" in json.loads(info.value.body)["message"]
