"""The stack's generated credentials, where they go (and where not), Redis's hardening and the
NetworkPolicies, from the pure builders."""

from __future__ import annotations

import base64
import json
from dataclasses import replace
from typing import Any

from tradebot_operator.builders import Stack, StackAccess, build_children
from tradebot_operator.builders.access import SECRETS_ANNOTATION

CANARY = StackAccess("canary-db-0a1b2c3d4e", "canary-redis-5f6g7h8i9j", "canary-token-k0l1m2n3o4", "ops")
SERVICES = ("market-data", "strategy", "execution", "storage", "api", "dashboard")


def body(**spec: Any) -> dict[str, Any]:
    return {"metadata": {"name": "demo", "namespace": "trading", "uid": "uid-1"}, "spec": spec}


def children(access: StackAccess = CANARY, **spec: Any) -> dict[tuple[str, str], dict[str, Any]]:
    return {(o["kind"], o["metadata"]["name"]): o for o in build_children(body(**spec), access)}


def pod(objs: dict, kind: str, name: str) -> dict[str, Any]:
    return objs[(kind, name)]["spec"]["template"]


def secret_refs(template: dict[str, Any]) -> dict[str, tuple[str, str]]:
    return {
        v["name"]: (v["valueFrom"]["secretKeyRef"]["name"], v["valueFrom"]["secretKeyRef"]["key"])
        for v in template["spec"]["containers"][0].get("env", ())
        if "secretKeyRef" in v.get("valueFrom", {})
    }


def test_the_auth_secret_holds_the_token_and_the_redis_password() -> None:
    secret = children()[("Secret", "demo-auth")]
    data = {k: base64.b64decode(v).decode() for k, v in secret["data"].items()}
    assert data == {
        "AUTH_TOKEN": CANARY.auth_token,
        "REDIS_PASSWORD": CANARY.redis_password,
        "REDIS_URL": f"redis://:{CANARY.redis_password}@demo-redis:6379",
    }


def test_a_secret_value_is_only_ever_in_a_secret() -> None:
    for (kind, name), obj in children().items():
        if kind != "Secret":
            text = json.dumps(obj)
            for value in (CANARY.db_password, CANARY.redis_password, CANARY.auth_token):
                assert value not in text, f"{kind} {name} holds a generated credential"


def kind_of(component: str) -> str:
    return "StatefulSet" if component == "strategy" else "Deployment"  # strategy scales by ordinal


def test_each_pod_gets_only_the_credentials_its_settings_read() -> None:
    objs = children()
    for component in SERVICES:
        refs = secret_refs(pod(objs, kind_of(component), f"demo-{component}"))
        assert refs["REDIS_URL"] == ("demo-auth", "REDIS_URL"), component
        assert ("AUTH_TOKEN" in refs) == (component in ("api", "dashboard")), component
        assert ("DATABASE_URL" in refs) == (component in ("storage", "api")), component
        env = {
            v["name"]: v.get("value")
            for v in pod(objs, kind_of(component), f"demo-{component}")["spec"]["containers"][0]["env"]
        }
        assert env["BIND_HOST"] == "0.0.0.0"  # a container listens on its own network
    assert "REDIS_URL" not in objs[("ConfigMap", "demo-config")]["data"]


def test_redis_runs_protected_with_the_password_and_a_memory_bound() -> None:
    container = pod(children(), "StatefulSet", "demo-redis")["spec"]["containers"][0]
    args = container["args"]
    assert args[args.index("--protected-mode") + 1] == "yes"
    assert args[args.index("--requirepass") + 1] == "$(REDIS_PASSWORD)"  # expanded by the kubelet
    assert int(args[args.index("--maxmemory") + 1]) == 3 * 256 * 2**20 // 4  # of the 256Mi limit
    assert args[args.index("--maxmemory-policy") + 1] == "noeviction"
    assert secret_refs({"spec": {"containers": [container]}}) == {
        "REDIS_PASSWORD": ("demo-auth", "REDIS_PASSWORD"),
        "REDISCLI_AUTH": ("demo-auth", "REDIS_PASSWORD"),  # the readiness probe's redis-cli
    }
    unbounded = pod(children(redis={"resources": {"limits": {}}}), "StatefulSet", "demo-redis")
    assert "--maxmemory" not in unbounded["spec"]["containers"][0]["args"]


def test_a_rotated_credential_restarts_exactly_its_readers() -> None:
    before, after = children(), children(replace(CANARY, auth_token="another-token-p5q6r7s8"))
    digest = lambda objs, kind, name: pod(objs, kind, name)["metadata"]["annotations"][SECRETS_ANNOTATION]  # noqa: E731
    for component in SERVICES:
        changed = digest(before, kind_of(component), f"demo-{component}") != digest(
            after, kind_of(component), f"demo-{component}"
        )
        assert changed == (component in ("api", "dashboard")), component
    assert digest(before, "StatefulSet", "demo-redis") == digest(after, "StatefulSet", "demo-redis")
    rotated = children(replace(CANARY, redis_password="another-redis-t9u0v1w2"))
    for component in SERVICES:
        assert digest(before, kind_of(component), f"demo-{component}") != digest(
            rotated, kind_of(component), f"demo-{component}"
        )
    assert digest(before, "StatefulSet", "demo-redis") != digest(rotated, "StatefulSet", "demo-redis")


def test_network_policies_admit_the_stack_its_operator_and_what_the_spec_opens() -> None:
    objs = children()
    redis = objs[("NetworkPolicy", "demo-redis")]["spec"]
    assert redis["podSelector"]["matchLabels"]["app.kubernetes.io/component"] == "redis"
    stack_pods, operator = redis["ingress"][0]["from"]
    assert stack_pods["podSelector"]["matchExpressions"][0]["values"] == sorted(SERVICES)
    assert "namespaceSelector" not in stack_pods  # this namespace only
    assert operator["namespaceSelector"] == {"matchLabels": {"kubernetes.io/metadata.name": "ops"}}
    database, operator_again = objs[("NetworkPolicy", "demo-timescaledb")]["spec"]["ingress"][0]["from"]
    assert database["podSelector"]["matchExpressions"][0]["values"] == [
        "api",
        "backtest",
        "backup",
        "storage",
    ]
    assert operator_again == operator  # it reads the Backtests' results
    api = objs[("NetworkPolicy", "demo-api")]["spec"]["ingress"]
    assert api[0]["from"] == [{"podSelector": {}}] and api[1] == {
        "ports": [{"port": 9464, "protocol": "TCP"}]
    }
    opened = children(network={"appNamespaces": ["ingress-nginx"]})[("NetworkPolicy", "demo-dashboard")]
    assert opened["spec"]["ingress"][0]["from"][1] == {
        "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "ingress-nginx"}}
    }
    anywhere = children(network={"openApps": True})[("NetworkPolicy", "demo-api")]
    assert "from" not in anywhere["spec"]["ingress"][0]
    assert Stack.from_body(body()).spec.network.open_apps is False
