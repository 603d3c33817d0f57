"""The chart installed into the real control plane (kube-apiserver, controller-manager, scheduler, kwok).

`helm install` makes the operator Deployment Ready (kwok runs no containers, it makes Pods Ready)
and establishes the CRD; everything the chart renders, the example stacks and what the operator
builds pass the API server's own validation (server-side dry run); and the operator, started in
this process as the ServiceAccount the chart created, with only the RBAC the chart granted,
reconciles a stack applied afterwards into its children and a Ready status.
"""

from __future__ import annotations

import json
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis as redis_lib
import yaml
from kubernetes import client, config

from chart.support import CHART, Helm
from chart.test_chart import SCENARIOS
from k8s.controlplane import REPO_ROOT, ControlPlane
from k8s.operator_support import OperatorThread, Stacks, wait_for, write_heartbeat
from tradebot_operator.builders import Stack, StackAccess, build_children
from tradebot_operator.builders.strategy import STRATEGY, replica_shards
from tradebot_operator.config import OperatorConfig

pytestmark = pytest.mark.k8s

RELEASE = "tradebot"
OPERATOR = "tradebot-operator"  # the chart's full name (and ServiceAccount) for release "tradebot"
CRD_NAME = "tradingstacks.tradebot.dev"


@pytest.fixture(scope="module")
def api(control_plane: ControlPlane) -> Iterator[client.ApiClient]:
    api_client = config.new_client_from_config(config_file=str(control_plane.admin_kubeconfig))
    yield api_client
    api_client.close()


def new_namespace(cp: ControlPlane, prefix: str) -> str:
    name = f"{prefix}-{uuid.uuid4().hex[:6]}"
    cp.ensure_namespace(name)
    return name


def kubectl(
    cp: ControlPlane, *args: str, input: str | None = None, kubeconfig: Path | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [cp.kubectl, *args], env=cp.env(kubeconfig), input=input, capture_output=True, text=True, timeout=120
    )


def helm_on(cp: ControlPlane, helm: Helm, *args: str) -> str:
    return helm.check(*args, env=cp.env(), timeout=300)


@pytest.fixture(scope="module")
def installed(control_plane: ControlPlane, helm: Helm, api: client.ApiClient) -> Iterator[tuple[str, str]]:
    """The chart's defaults installed with --wait into a fresh namespace: (namespace, install output)."""
    namespace = new_namespace(control_plane, "chart")
    out = helm_on(
        control_plane, helm, "install", RELEASE, str(CHART), "-n", namespace, "--wait", "--timeout", "120s"
    )
    yield namespace, out
    helm_on(control_plane, helm, "uninstall", RELEASE, "-n", namespace, "--wait")
    client.CoreV1Api(api).delete_namespace(namespace)


def test_install_makes_the_operator_ready_and_the_crd_established(
    installed: tuple[str, str], api: client.ApiClient
) -> None:
    namespace, _ = installed
    dep = client.AppsV1Api(api).read_namespaced_deployment(OPERATOR, namespace)
    assert dep.status.ready_replicas == 2  # a leader and a standby (one Lease)
    pods = client.CoreV1Api(api).list_namespaced_pod(
        namespace, label_selector="app.kubernetes.io/component=operator"
    )
    assert [p.status.phase for p in pods.items] == ["Running", "Running"]
    assert {p.spec.service_account_name for p in pods.items} == {OPERATOR}
    assert (
        client.PolicyV1Api(api)
        .read_namespaced_pod_disruption_budget(OPERATOR, namespace)
        .spec.max_unavailable
        == 1
    )
    for name in (CRD_NAME, "backtests.tradebot.dev"):
        crd = client.ApiextensionsV1Api(api).read_custom_resource_definition(name)
        assert any(c.type == "Established" and c.status == "True" for c in crd.status.conditions), name


def test_install_notes_give_the_exact_port_forward_command(installed: tuple[str, str]) -> None:
    namespace, out = installed
    notes = out.split("NOTES:", 1)[1]
    assert f"kubectl apply -n {namespace} -f k8s/stack.yaml" in notes
    assert f"kubectl port-forward -n {namespace} svc/demo-dashboard 8001:8001" in notes
    assert "http://localhost:8001" in notes
    assert f"kubectl port-forward -n {namespace} svc/demo-api 8000:8000" in notes
    assert f"kubectl get tradingstack demo -n {namespace} -w" in notes
    assert f"helm test {RELEASE} -n {namespace}" in notes


def server_dry_run(cp: ControlPlane, objects: list[dict[str, Any]]) -> subprocess.CompletedProcess[str]:
    """Server-side apply, dry run, strict field validation: the API server's own verdict.

    Namespaced objects carry their namespace (helm renders it; the examples get it here).
    """
    return kubectl(
        cp, "apply", "--server-side", "--dry-run=server", "--validate=strict", "--force-conflicts",
        "--field-manager=chart-tests", "-f", "-",
        input="\n---\n".join(yaml.safe_dump(o) for o in objects),
    )  # fmt: skip


def dry_run(cp: ControlPlane, objects: list[dict[str, Any]]) -> None:
    result = server_dry_run(cp, objects)
    assert result.returncode == 0, result.stderr
    assert result.stdout.count("(server dry run)") == len(objects), result.stdout


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_every_rendered_object_passes_the_api_servers_validation(
    control_plane: ControlPlane, installed: tuple[str, str], helm: Helm, scenario: str, tmp_path: Path
) -> None:
    namespace, _ = installed  # the CRD is there, so stacks are checked too (with their CEL rules)
    values: dict[str, Any] = json.loads(json.dumps(SCENARIOS[scenario]))
    if scenario == "namespaces":
        other = new_namespace(control_plane, "team")
        values["operator"]["watch"]["namespaces"] = [other, namespace]
    (tmp_path / "values.json").write_text(json.dumps(values))
    out = helm.check("template", "dry", str(CHART), "-n", namespace, "-f", str(tmp_path / "values.json"))
    dry_run(control_plane, [o for o in yaml.safe_load_all(out) if o])


def test_example_stacks_and_the_operators_children_pass_the_api_servers_validation(
    control_plane: ControlPlane, installed: tuple[str, str]
) -> None:
    namespace, _ = installed
    for name in ("stack.yaml", "stack-alpaca.yaml", "stack-polygon.yaml"):
        docs = [d for d in yaml.safe_load_all((REPO_ROOT / "k8s" / name).read_text()) if d]
        for doc in docs:
            doc["metadata"]["namespace"] = namespace
        dry_run(control_plane, docs)
        stack = next(d for d in docs if d["kind"] == "TradingStack")
        body = {**stack, "metadata": {**stack["metadata"], "namespace": namespace, "uid": str(uuid.uuid4())}}
        children = build_children(body, StackAccess.generate())
        dry_run(control_plane, children)
    # The check is not vacuous: a misspelt field or a broken CEL rule is refused.
    deployment = next(c for c in children if c["kind"] == "Deployment")
    deployment["spec"]["template"]["spec"]["containers"][0]["imagePullPolice"] = "Always"
    result = server_dry_run(control_plane, [deployment])
    assert result.returncode != 0 and "imagePullPolice: field not declared in schema" in result.stderr
    stack = {**stack, "spec": {k: v for k, v in stack["spec"].items() if k != "credentials"}}
    result = server_dry_run(control_plane, [stack])
    assert result.returncode != 0 and "need credentials.secretRef" in result.stderr


def can_i(cp: ControlPlane, namespace: str, service_account: str, *args: str) -> bool:
    result = kubectl(cp, "auth", "can-i", *args, f"--as=system:serviceaccount:{namespace}:{service_account}")
    return result.stdout.strip() == "yes"


def test_namespaced_install_grants_only_its_namespace(
    control_plane: ControlPlane, installed: tuple[str, str]
) -> None:
    namespace, _ = installed
    assert can_i(control_plane, namespace, OPERATOR, "watch", "tradingstacks.tradebot.dev", "-n", namespace)
    assert can_i(control_plane, namespace, OPERATOR, "patch", "deployments.apps", "-n", namespace)
    # Backtests: watched, their status written, their Jobs created (server-side apply: a patch).
    assert can_i(control_plane, namespace, OPERATOR, "watch", "backtests.tradebot.dev", "-n", namespace)
    assert can_i(
        control_plane,
        namespace,
        OPERATOR,
        "patch",
        "backtests.tradebot.dev",
        "--subresource=status",
        "-n",
        namespace,
    )
    assert can_i(control_plane, namespace, OPERATOR, "create", "jobs.batch", "-n", namespace)
    assert not can_i(control_plane, namespace, OPERATOR, "delete", "jobs.batch", "-n", namespace)
    assert not can_i(
        control_plane, namespace, OPERATOR, "list", "tradingstacks.tradebot.dev", "-n", "default"
    )
    assert not can_i(control_plane, namespace, OPERATOR, "list", "pods", "-n", namespace)
    assert not can_i(control_plane, namespace, OPERATOR, "create", "clusterroles.rbac.authorization.k8s.io")


def test_clusterwide_install_grants_every_namespace(control_plane: ControlPlane, helm: Helm) -> None:
    namespace = new_namespace(control_plane, "chartcw")
    release = "tbcw"
    sa = f"{release}-tradebot-operator"
    helm_on(
        control_plane, helm, "install", release, str(CHART), "-n", namespace,
        "--set", "operator.watch.clusterWide=true", "--wait", "--timeout", "120s",
    )  # fmt: skip
    try:
        assert can_i(control_plane, namespace, sa, "watch", "tradingstacks.tradebot.dev", "--all-namespaces")
        assert can_i(control_plane, namespace, sa, "patch", "statefulsets.apps", "-n", "default")
        assert not can_i(control_plane, namespace, sa, "list", "nodes")
    finally:
        helm_on(control_plane, helm, "uninstall", release, "-n", namespace, "--wait")
    assert not can_i(control_plane, namespace, sa, "watch", "tradingstacks.tradebot.dev", "--all-namespaces")


def test_operator_as_the_charts_service_account_reconciles_a_stack(
    control_plane: ControlPlane, installed: tuple[str, str], api: client.ApiClient, redis_server_url: str
) -> None:
    """kwok runs no containers: the operator runs here, with the token of the chart's ServiceAccount.

    Its RBAC is exactly what the chart granted; the services' heartbeats are written into a real
    Redis that the operator reads, as the services themselves would.
    """
    namespace, _ = installed
    kubeconfig = control_plane.service_account_kubeconfig(namespace, OPERATOR)
    operator_config = OperatorConfig(
        namespaces=(namespace,), kubeconfig=str(kubeconfig), redis_url=redis_server_url, health_interval=1.0
    )
    control_plane.create_volumes(2, size="10Gi")  # Redis and TimescaleDB claim one each
    operator = OperatorThread(operator_config).start()
    redis = redis_lib.Redis.from_url(redis_server_url)
    try:
        result = kubectl(control_plane, "apply", "-n", namespace, "-f", str(REPO_ROOT / "k8s" / "stack.yaml"))
        assert result.returncode == 0, result.stderr
        stacks = Stacks(api, namespace)
        stack = Stack.from_body(stacks.get("demo"))
        services = stack.service_ids
        # Strategy is a StatefulSet whose replicas beat as strategy-<k>; the others are Deployments.
        beats = [sid for sid in services if sid != STRATEGY] + list(replica_shards(stack))
        apps = client.AppsV1Api(api)

        def children() -> set[str] | None:
            deployments = {d.metadata.name for d in apps.list_namespaced_deployment(namespace).items}
            wanted = {f"demo-{sid.replace('_', '-')}" for sid in services if sid != STRATEGY}
            return wanted if wanted <= deployments else None

        wait_for("the stack's Deployments", children, timeout=90)
        sets = {s.metadata.name for s in apps.list_namespaced_stateful_set(namespace).items}
        assert {"demo-redis", "demo-timescaledb", "demo-strategy"} <= sets

        def ready() -> dict[str, Any] | None:
            for sid in beats:  # the services keep beating while we wait
                write_heartbeat(redis, sid)
            status = stacks.status("demo")
            return status if status.get("phase") == "Ready" else None

        status = wait_for("the stack Ready", ready, timeout=120)
        assert status["observedGeneration"] == stacks.get("demo")["metadata"]["generation"]
        assert status["readyServices"] == f"{len(services)}/{len(services)}"
        assert status["endpoints"]["dashboard"] == f"http://demo-dashboard.{namespace}.svc:8001"
    finally:
        operator.stop()
        redis.close()
        kubectl(control_plane, "delete", "-n", namespace, "tradingstack", "demo", "--wait=false")
