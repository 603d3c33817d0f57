"""The Helm chart rendered by the pinned helm: lint, every object against Kubernetes' OpenAPI schemas,
hardened workloads, values the schema refuses with clear messages, the RBAC rules verbatim, NOTES.

No cluster: `helm template` and `helm lint` only (test_chart_cluster.py installs it for real).
"""

from __future__ import annotations

from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml

from chart.conftest import Render
from chart.support import CHART, CRD_FILE, KUBERNETES_VERSION, RBAC_FILE, Helm, HelmError
from chart.workloads import pod_spec, problems, workloads
from tradebot.common import timescaledb
from tradebot.providers.registry import DATA_SOURCES
from tradebot_operator.builders import StackAccess, build_children

Obj = dict[str, Any]
LEADER_RBAC_FILE = CHART / "files" / "operator-leader-rules.yaml"

SCENARIOS: dict[str, dict[str, Any]] = {
    "default": {},
    # Everything a person overrides on a real cluster, at once.
    "overridden": {
        "image": {"repository": "registry.example.com/tb/operator", "digest": "sha256:" + "a" * 64},
        "imagePullSecrets": [{"name": "regcred"}],
        "operator": {
            "watch": {"clusterWide": True},
            "healthInterval": 5,
            "redisUrl": "redis://{name}-redis.{namespace}.svc.cluster.local:6379",
            "verbose": True,
            "extraEnv": [{"name": "LOG_FORMAT", "value": "json"}],
        },
        "resources": {"requests": {"cpu": "200m", "memory": "256Mi"}, "limits": {"cpu": 1, "memory": "1Gi"}},
        "nodeSelector": {"kubernetes.io/os": "linux", "pool": "system"},
        "tolerations": [{"key": "dedicated", "operator": "Equal", "value": "system", "effect": "NoSchedule"}],
        "affinity": {
            "nodeAffinity": {
                "requiredDuringSchedulingIgnoredDuringExecution": {
                    "nodeSelectorTerms": [
                        {"matchExpressions": [{"key": "pool", "operator": "In", "values": ["system"]}]}
                    ]
                }
            }
        },
        "priorityClassName": "system-cluster-critical",
        "podAnnotations": {"prometheus.io/scrape": "false"},
        "podLabels": {"team": "trading"},
        "podSecurityContext": {"runAsNonRoot": True, "runAsUser": 20000, "fsGroup": 20000},
        "serviceAccount": {"annotations": {"iam.example.com/role": "tradebot"}},
    },
    "namespaces": {"operator": {"watch": {"namespaces": ["team-a", "team-b", "tradebot"]}}},
    "stack-alpaca": {
        "stack": {
            "create": True,
            "name": "live",
            "spec": {"dataSource": "alpaca", "symbolMode": "popular", "maxSymbols": 50},
            "credentials": {"create": True, "data": {"ALPACA_KEY": "key-id", "ALPACA_SECRET": "s3cret"}},
        }
    },
    "stack-polygon-secret": {
        "stack": {
            "create": True,
            "spec": {
                "dataSource": "polygon",
                "symbols": ["AAPL", "BRK.B"],
                "credentials": {"secretRef": {"name": "mine"}},
                "services": {"api": {"replicas": 2}},
            },
        }
    },
    "minimal": {
        "serviceAccount": {"create": False, "name": "existing-sa"},
        "rbac": {"create": False},
        "tests": {"enabled": False},
    },
}


def by_kind(objects: list[Obj], kind: str) -> list[Obj]:
    return [o for o in objects if o["kind"] == kind]


def one(objects: list[Obj], kind: str) -> Obj:
    found = by_kind(objects, kind)
    assert len(found) == 1, f"expected one {kind}, got {[o['metadata']['name'] for o in found]}"
    return found[0]


def operator_container(objects: list[Obj]) -> Obj:
    return pod_spec(one(objects, "Deployment"))["containers"][0]


def crd_spec_schema() -> Obj:
    crd = yaml.safe_load(CRD_FILE.read_text())
    return crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]


def validate_stack(obj: Obj) -> None:
    """A TradingStack against the CRD's structural schema (OpenAPI v3.0 ~ JSON Schema draft 4).

    The CEL rules (x-kubernetes-validations) are the API server's: test_chart_cluster dry-runs them.
    """
    jsonschema.Draft4Validator(crd_spec_schema()).validate(obj)


def validate_object(obj: Obj) -> None:
    if obj["apiVersion"].startswith("tradebot.dev/"):
        validate_stack(obj)
    else:
        kubernetes_validate.validate(obj, KUBERNETES_VERSION, strict=True)


# --------------------------------------------------------------------------- lint and render


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_helm_lint_strict(helm: Helm, scenario: str, values_file: Any) -> None:
    out = helm.check("lint", "--strict", str(CHART), *values_file(SCENARIOS[scenario]))
    assert "0 chart(s) failed" in out


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_every_object_is_valid_kubernetes(render: Render, scenario: str) -> None:
    objects = render(SCENARIOS[scenario], crds=True)
    assert objects
    errors = []
    for obj in objects:
        try:
            validate_object(obj)
        except (kubernetes_validate.ValidationError, jsonschema.ValidationError) as e:
            errors.append(f"{obj['kind']}/{obj['metadata']['name']}: {e}")
    assert not errors, "\n".join(errors)


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_every_chart_workload_is_hardened(render: Render, scenario: str) -> None:
    found = [p for w in workloads(render(SCENARIOS[scenario])) for p in problems(w)]
    assert not found, "\n".join(found)


@pytest.mark.parametrize("source", ["synthetic", "alpaca", "polygon"])
def test_every_operator_workload_is_hardened_and_valid(source: str) -> None:
    """The operator's pure builders: what it creates for a stack of each data source."""
    spec: Obj = {"dataSource": source, "symbols": ["AAPL"]}
    if source != "synthetic":
        spec["credentials"] = {"secretRef": {"name": f"{source}-credentials"}}
    body = {"metadata": {"name": "demo", "namespace": "t", "uid": "u-1"}, "spec": spec}
    children = build_children(body, StackAccess.generate())
    kinds = {c["kind"] for c in children}
    assert {"Deployment", "StatefulSet"} <= kinds
    found = [p for w in workloads(children) for p in problems(w)]
    assert not found, "\n".join(found)
    for child in children:
        kubernetes_validate.validate(child, KUBERNETES_VERSION, strict=True)


def test_default_render(render: Render) -> None:
    objects = render(namespace="trading")
    assert sorted(o["kind"] for o in objects) == sorted(
        [
            "ServiceAccount",
            "Role",
            "Role",
            "RoleBinding",
            "RoleBinding",
            "Deployment",
            "PodDisruptionBudget",
            "Pod",
        ]
    )
    dep = one(objects, "Deployment")
    assert dep["metadata"]["name"] == "tradebot-operator"
    # Two copies, one Lease: a rolling update never leaves the stacks without an operator.
    assert dep["spec"]["replicas"] == 2 and dep["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"] == 0
    assert one(objects, "PodDisruptionBudget")["spec"]["maxUnavailable"] == 1
    c = operator_container(objects)
    assert c["image"] == "ghcr.io/tradebot/tradebot-operator:0.1.0"
    env = {e["name"]: e.get("value") for e in c["env"]}
    # The operator's own contract (tradebot_operator.config / run.py): watch the release namespace.
    assert env["TRADEBOT_OPERATOR_NAMESPACES"] == "trading"
    assert c["args"] == ["run", "--health-port=8080"]
    lease = {e["name"]: e.get("value") or e["valueFrom"]["fieldRef"]["fieldPath"] for e in c["env"]}
    assert lease["TRADEBOT_OPERATOR_LEASE_NAME"] == "tradebot-operator"
    assert lease["TRADEBOT_OPERATOR_LEASE_NAMESPACE"] == "metadata.namespace"
    assert lease["TRADEBOT_OPERATOR_IDENTITY"] == "metadata.name"
    assert c["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "healthz"}
    assert pod_spec(dep)["serviceAccountName"] == "tradebot-operator"
    roles = {r["metadata"]["name"]: r for r in by_kind(objects, "Role")}
    leader = roles.pop("tradebot-operator-leader")
    assert leader["rules"] == yaml.safe_load(LEADER_RBAC_FILE.read_text())
    (role,) = roles.values()
    binding = next(
        b for b in by_kind(objects, "RoleBinding") if b["roleRef"]["name"] == role["metadata"]["name"]
    )
    assert role["metadata"]["namespace"] == binding["metadata"]["namespace"] == "trading"
    sa = {"kind": "ServiceAccount", "name": "tradebot-operator", "namespace": "trading"}
    assert binding["subjects"] == [sa]
    # The CRD ships under crds/, not as a template: helm installs it first and never deletes it.
    assert not by_kind(objects, "CustomResourceDefinition")
    assert not by_kind(objects, "TradingStack")  # no stack unless asked
    labels = dep["metadata"]["labels"]
    assert labels["app.kubernetes.io/name"] == labels["app.kubernetes.io/instance"] == "tradebot"
    assert labels["helm.sh/chart"] == "tradebot-0.1.0"


def test_crds_are_the_operators(render: Render) -> None:
    crds = by_kind(render(crds=True), "CustomResourceDefinition")
    files = (CRD_FILE, CHART / "crds" / "backtests.yaml")
    assert sorted(crds, key=lambda c: c["metadata"]["name"]) == sorted(
        (yaml.safe_load(f.read_text()) for f in files), key=lambda c: c["metadata"]["name"]
    )


def test_rbac_rules_are_the_operators_file_verbatim(render: Render) -> None:
    rules = yaml.safe_load(RBAC_FILE.read_text())
    namespaced = render(SCENARIOS["namespaces"])
    roles = [r for r in by_kind(namespaced, "Role") if not r["metadata"]["name"].endswith("-leader")]
    assert sorted(r["metadata"]["namespace"] for r in roles) == ["team-a", "team-b", "tradebot"]
    assert all(r["rules"] == rules for r in roles)
    assert len(by_kind(namespaced, "RoleBinding")) == 4  # and the leader Lease's, in the release namespace
    assert not by_kind(namespaced, "ClusterRole")
    env = {e["name"]: e.get("value") for e in operator_container(namespaced)["env"]}
    assert env["TRADEBOT_OPERATOR_NAMESPACES"] == "team-a,team-b,tradebot"

    clusterwide = render(SCENARIOS["overridden"])
    assert one(clusterwide, "ClusterRole")["rules"] == rules
    binding = one(clusterwide, "ClusterRoleBinding")
    assert binding["metadata"]["name"] == "tradebot-operator-tradebot"
    assert binding["subjects"][0]["namespace"] == "tradebot"
    assert [r["metadata"]["name"] for r in by_kind(clusterwide, "Role")] == ["tradebot-operator-leader"]


def test_overrides_reach_the_operator_pod(render: Render) -> None:
    values = SCENARIOS["overridden"]
    objects = render(values)
    dep = one(objects, "Deployment")
    spec = pod_spec(dep)
    c = operator_container(objects)
    assert c["image"] == f"registry.example.com/tb/operator@sha256:{'a' * 64}"
    assert c["resources"] == values["resources"]
    assert spec["nodeSelector"] == values["nodeSelector"]
    assert spec["tolerations"] == values["tolerations"]
    assert spec["affinity"] == values["affinity"]
    assert spec["priorityClassName"] == "system-cluster-critical"
    assert spec["imagePullSecrets"] == [{"name": "regcred"}]
    assert spec["securityContext"]["runAsUser"] == 20000
    assert dep["spec"]["template"]["metadata"]["labels"]["team"] == "trading"
    assert dep["spec"]["template"]["metadata"]["annotations"]["prometheus.io/scrape"] == "false"
    assert "--all-namespaces" in c["args"] and "--verbose" in c["args"]
    env = {e["name"]: e.get("value") for e in c["env"]}
    assert env["TRADEBOT_OPERATOR_NAMESPACES"] == ""
    assert env["TRADEBOT_OPERATOR_REDIS_URL"] == values["operator"]["redisUrl"]
    assert env["TRADEBOT_OPERATOR_HEALTH_INTERVAL"] == "5"
    assert env["LOG_FORMAT"] == "json"
    sa = one(objects, "ServiceAccount")
    assert sa["metadata"]["annotations"] == {"iam.example.com/role": "tradebot"}
    # The test Pod follows the scheduling overrides too.
    test_pod = one(objects, "Pod")
    assert test_pod["spec"]["nodeSelector"] == values["nodeSelector"]


def test_minimal_uses_an_existing_service_account(render: Render) -> None:
    objects = render(SCENARIOS["minimal"])
    assert [o["kind"] for o in objects] == ["PodDisruptionBudget", "Deployment"]
    assert pod_spec(one(objects, "Deployment"))["serviceAccountName"] == "existing-sa"


def test_default_stack_from_values_with_its_credentials_secret(render: Render) -> None:
    objects = render(SCENARIOS["stack-alpaca"])
    stack = one(objects, "TradingStack")
    assert stack["metadata"] == {
        "name": "live",
        "namespace": "tradebot",
        "labels": stack["metadata"]["labels"],
    }
    assert stack["spec"] == {
        "dataSource": "alpaca",
        "symbolMode": "popular",
        "symbols": ["AAPL", "MSFT", "AMZN", "GOOG", "TSLA"],
        "maxSymbols": 50,
        "credentials": {"secretRef": {"name": "live-credentials"}},
    }
    secret = one(objects, "Secret")
    assert secret["metadata"]["name"] == "live-credentials"
    assert secret["stringData"] == {"ALPACA_KEY": "key-id", "ALPACA_SECRET": "s3cret"}
    assert tuple(secret["stringData"]) == DATA_SOURCES["alpaca"].credentials  # the keys the operator reads

    objects = render(SCENARIOS["stack-polygon-secret"])
    stack = one(objects, "TradingStack")
    assert stack["metadata"]["name"] == "demo"
    assert stack["spec"]["credentials"] == {"secretRef": {"name": "mine"}}
    assert stack["spec"]["services"] == {"api": {"replicas": 2}}
    assert not by_kind(objects, "Secret")


def test_helm_test_hook_asks_the_stack(render: Render) -> None:
    pod = one(render(SCENARIOS["stack-alpaca"], namespace="prod"), "Pod")
    assert pod["metadata"]["annotations"]["helm.sh/hook"] == "test"
    assert "hook-succeeded" in pod["metadata"]["annotations"]["helm.sh/hook-delete-policy"]
    c = pod["spec"]["containers"][0]
    assert c["image"] == "ghcr.io/tradebot/tradebot:0.1.0"
    env = {e["name"]: e.get("value") or e["valueFrom"]["secretKeyRef"] for e in c["env"]}
    assert env["CHECK_URLS"].split() == [
        "http://live-api.prod.svc:8000/health",
        "http://live-dashboard.prod.svc:8001/",
    ]
    assert env["AUTH_TOKEN"] == {"name": "live-auth", "key": "AUTH_TOKEN"}  # the operator's Secret
    compile(c["args"][0], "helm-test", "exec")  # the check script is valid Python


# --------------------------------------------------------------------------- refused values

SECURE = {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}}
ALPACA = {"dataSource": "alpaca"}
POLYGON = {"dataSource": "polygon"}


def polygon_key(key: str) -> dict[str, Any]:
    return {"create": True, "data": {"POLYGON_API_KEY": key}}


BAD_VALUES = [
    pytest.param(
        {"image": {"pullPolicy": "Sometimes"}}, "at '/image/pullPolicy': value must be one of", id="pull"
    ),
    pytest.param({"image": {"digest": "sha256:xyz"}}, "at '/image/digest'", id="digest"),
    pytest.param({"replicas": 2}, "additional properties 'replicas' not allowed", id="unknown key"),
    pytest.param({"operator": {"watchNamespaces": ["a"]}}, "'watchNamespaces' not allowed", id="typo"),
    pytest.param(
        {"operator": {"watch": {"namespaces": ["Team_A"]}}}, "at '/operator/watch/namespaces/0'", id="ns"
    ),
    pytest.param(
        {"operator": {"healthPort": 80}}, "at '/operator/healthPort': minimum", id="privileged port"
    ),
    pytest.param({"operator": {"healthInterval": 0}}, "at '/operator/healthInterval'", id="interval"),
    pytest.param(
        {"podSecurityContext": {"runAsNonRoot": False}},
        "at '/podSecurityContext/runAsNonRoot': value must be true",
        id="root",
    ),
    pytest.param(
        {"podSecurityContext": {"runAsNonRoot": True, "runAsUser": 0}},
        "at '/podSecurityContext/runAsUser'",
        id="uid 0",
    ),
    pytest.param(
        {"securityContext": {**SECURE, "allowPrivilegeEscalation": True}},
        "at '/securityContext/allowPrivilegeEscalation': value must be false",
        id="escalation",
    ),
    pytest.param(
        {"securityContext": {**SECURE, "capabilities": {"drop": ["NET_RAW"]}}},
        "at '/securityContext/capabilities/drop'",
        id="drop",
    ),
    pytest.param(
        {"securityContext": {**SECURE, "capabilities": {"drop": ["ALL"], "add": ["NET_ADMIN"]}}},
        "at '/securityContext/capabilities/add'",
        id="add",
    ),
    pytest.param({"resources": {"requests": {"cpu": "lots"}}}, "at '/resources/requests/cpu'", id="quantity"),
    pytest.param({"resources": {"request": {"cpu": "1"}}}, "'request' not allowed", id="resources key"),
    pytest.param(
        {"tolerations": [{"key": "a", "operator": "Maybe"}]}, "at '/tolerations/0/operator'", id="toleration"
    ),
    pytest.param({"nodeSelector": {"zone": 3}}, "at '/nodeSelector/zone'", id="node selector"),
    pytest.param(
        {"stack": {"spec": {"dataSource": "yahoo"}}},
        "at '/stack/spec/dataSource': value must be one of 'synthetic', 'alpaca', 'polygon'",
        id="data source",
    ),
    pytest.param(
        {"stack": {"spec": {"symbolMode": "tiny"}}}, "at '/stack/spec/symbolMode'", id="symbol mode"
    ),
    pytest.param({"stack": {"spec": {"symbols": ["aapl"]}}}, "at '/stack/spec/symbols/0'", id="symbol"),
    pytest.param({"stack": {"name": "My_Stack"}}, "at '/stack/name'", id="stack name"),
    pytest.param(
        {"stack": {"credentials": {"data": {"ALPACA_TOKEN": "x"}}}},
        "'ALPACA_TOKEN' not allowed",
        id="credential key",
    ),
    pytest.param({"tests": {"timeoutSeconds": "soon"}}, "at '/tests/timeoutSeconds'", id="test timeout"),
    # Across values: the chart's own checks, each naming what to set.
    pytest.param(
        {"stack": {"create": True, "spec": ALPACA}},
        "stack.spec.dataSource alpaca needs credentials: set stack.credentials.create=true with "
        "stack.credentials.data.ALPACA_KEY and ALPACA_SECRET, or stack.spec.credentials.secretRef.name",
        id="alpaca without credentials",
    ),
    pytest.param(
        {"stack": {"create": True, "spec": POLYGON, "credentials": polygon_key("")}},
        "stack.credentials.data.POLYGON_API_KEY is empty",
        id="empty key",
    ),
    pytest.param(
        {"stack": {"create": True, "spec": POLYGON, "credentials": polygon_key("<no value>")}},
        "export POLYGON_API_KEY first",
        id="skaffold without the variable",
    ),
    pytest.param(
        {
            "stack": {
                "create": True,
                "spec": {**POLYGON, "credentials": {"secretRef": {"name": "a"}}},
                "credentials": polygon_key("k"),
            }
        },
        "both name a Secret",
        id="two secrets",
    ),
    pytest.param(
        {"stack": {"create": True}, "operator": {"watch": {"namespaces": ["other"]}}},
        'stack.create puts stack "demo" in the release namespace "tradebot", '
        "which the operator does not watch",
        id="stack outside the watch",
    ),
    pytest.param(
        {"serviceAccount": {"create": False}},
        "serviceAccount.name: name the existing ServiceAccount",
        id="service account",
    ),
]


@pytest.mark.parametrize(("values", "message"), BAD_VALUES)
def test_bad_values_are_refused_with_a_clear_message(
    helm: Helm, values_file: Any, values: dict[str, Any], message: str
) -> None:
    with pytest.raises(HelmError) as info:
        helm.check("template", "tradebot", str(CHART), "-n", "tradebot", *values_file(values))
    assert message in info.value.stderr


def test_values_schema_agrees_with_the_crd() -> None:
    """The values schema's stack enums and symbol pattern are the CRD's, so neither drifts."""
    values_schema = yaml.safe_load((CHART / "values.schema.json").read_text())
    stack_spec = values_schema["properties"]["stack"]["properties"]["spec"]["properties"]
    crd_spec = crd_spec_schema()["properties"]["spec"]["properties"]
    for field in ("dataSource", "symbolMode"):
        assert stack_spec[field]["enum"] == crd_spec[field]["enum"], field
    assert stack_spec["symbols"]["items"]["pattern"] == crd_spec["symbols"]["items"]["pattern"]
    credentials = values_schema["properties"]["stack"]["properties"]["credentials"]
    keys = credentials["properties"]["data"]["properties"]
    assert set(keys) == {k for s in DATA_SOURCES.values() for k in s.credentials}


def test_default_values_match_the_images_and_the_crd_defaults() -> None:
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text())
    crd_images = crd_spec_schema()["properties"]["spec"]["properties"]["images"]["properties"]
    # The stack's default image is the services image of this chart's appVersion.
    services_image = f"{values['tests']['image']['repository']}:{chart['appVersion']}"
    assert crd_images["tradebot"]["default"] == services_image
    # TimescaleDB: the version the embedded default builds and the tests run.
    assert crd_images["timescaledb"]["default"] == timescaledb.IMAGE
    # The operator runs as the images' user.
    assert values["podSecurityContext"]["runAsUser"] == 10001


def test_the_charts_data_sources_are_the_registrys() -> None:
    """The chart's credential checks read files/data-sources.yaml, generated from the registry."""
    from tradebot_operator.crd import data_sources_yaml

    assert (CHART / "files" / "data-sources.yaml").read_text() == data_sources_yaml(), "run make crd"


def test_monitors_scrape_the_operator_and_every_stacks_pods(render: Render) -> None:
    assert not by_kind(render(), "ServiceMonitor") and not by_kind(render(), "PodMonitor")
    values = {"metrics": {"serviceMonitor": {"enabled": True, "labels": {"release": "prom"}},
                          "podMonitor": {"enabled": True, "interval": "15s"}}}  # fmt: skip
    objects = render({**values, **SCENARIOS["namespaces"]})
    monitor = one(objects, "ServiceMonitor")
    assert monitor["metadata"]["labels"]["release"] == "prom"
    assert monitor["spec"]["endpoints"] == [{"port": "metrics", "path": "/metrics", "interval": "30s"}]
    service = next(
        s for s in by_kind(objects, "Service") if s["metadata"]["name"] == "tradebot-operator-metrics"
    )
    assert monitor["spec"]["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()
    pods = one(objects, "PodMonitor")["spec"]
    assert pods["podMetricsEndpoints"] == [{"port": "metrics", "path": "/metrics", "interval": "15s"}]
    assert pods["namespaceSelector"] == {"matchNames": ["team-a", "team-b", "tradebot"]}
    # The operator's pods name the port the PodMonitor scrapes.
    body = {"metadata": {"name": "d", "namespace": "t", "uid": "u"}, "spec": {}}
    deployments = [o for o in build_children(body, StackAccess.generate()) if o["kind"] == "Deployment"]
    for d in deployments:
        ports = pod_spec(d)["containers"][0]["ports"]
        assert "metrics" in [p["name"] for p in ports]
        assert pods["selector"]["matchLabels"].items() <= d["spec"]["template"]["metadata"]["labels"].items()
    wide = render(
        {"metrics": {"podMonitor": {"enabled": True}}, "operator": {"watch": {"clusterWide": True}}}
    )
    assert one(wide, "PodMonitor")["spec"]["namespaceSelector"] == {"any": True}
