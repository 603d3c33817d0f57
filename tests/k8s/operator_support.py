"""Helpers for the operator's tests against the real control plane.

The operator runs in this process, in a thread, authenticated as a ServiceAccount
bound to exactly the rules of charts/tradebot/files/operator-rbac-rules.yaml.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml
from kubernetes import client
from kubernetes.client.rest import ApiException

from k8s.controlplane import REPO_ROOT
from support.services import wait_for
from tradebot.common.keys import errors_key, heartbeat_key
from tradebot_operator import GROUP, PLURAL, VERSION
from tradebot_operator.config import OperatorConfig
from tradebot_operator.run import operator

CRD_FILE = REPO_ROOT / "charts" / "tradebot" / "crds" / "tradingstacks.yaml"
BACKTEST_CRD_FILE = REPO_ROOT / "charts" / "tradebot" / "crds" / "backtests.yaml"
RBAC_FILE = REPO_ROOT / "charts" / "tradebot" / "files" / "operator-rbac-rules.yaml"
LEADER_RBAC_FILE = REPO_ROOT / "charts" / "tradebot" / "files" / "operator-leader-rules.yaml"
STACK_FILE = REPO_ROOT / "k8s" / "stack.yaml"
SERVICE_ACCOUNT = "tradebot-operator"


def install_crds(api: client.ApiClient) -> None:
    """The chart's CRDs: the operator watches both kinds."""
    for path in (CRD_FILE, BACKTEST_CRD_FILE):
        install_crd(api, path)


def install_crd(api: client.ApiClient, path: Path = CRD_FILE) -> None:
    ext = client.ApiextensionsV1Api(api)
    crd = yaml.safe_load(path.read_text())
    try:
        ext.create_custom_resource_definition(crd)
    except ApiException as e:
        if e.status != 409:
            raise
        current = ext.read_custom_resource_definition(crd["metadata"]["name"])
        crd["metadata"]["resourceVersion"] = current.metadata.resource_version
        ext.replace_custom_resource_definition(crd["metadata"]["name"], crd)

    def established() -> bool:
        got = ext.read_custom_resource_definition(crd["metadata"]["name"])
        return any(c.type == "Established" and c.status == "True" for c in got.status.conditions or [])

    wait_for("CRD Established", established)
    custom = client.CustomObjectsApi(api)
    wait_for("the CRD to be served", lambda: _served(custom, crd["spec"]["names"]["plural"]))


def _served(custom: client.CustomObjectsApi, plural: str) -> bool:
    try:
        custom.list_namespaced_custom_object(GROUP, VERSION, "default", plural)
        return True
    except ApiException as e:
        if e.status == 404:
            return False
        raise


def grant_operator_rbac(api: client.ApiClient, namespace: str, cluster_wide: bool = False) -> str:
    """The chart's rules in a Role (or a ClusterRole), bound to the operator's ServiceAccount."""
    rbac = client.RbacAuthorizationV1Api(api)
    rules = yaml.safe_load(RBAC_FILE.read_text())
    name = f"{SERVICE_ACCOUNT}-{namespace}" if cluster_wide else SERVICE_ACCOUNT
    kind = "ClusterRole" if cluster_wide else "Role"
    role = {"metadata": {"name": name}, "rules": rules}
    binding = {
        "metadata": {"name": name},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": kind, "name": name},
        "subjects": [{"kind": "ServiceAccount", "name": SERVICE_ACCOUNT, "namespace": namespace}],
    }
    if cluster_wide:
        rbac.create_cluster_role(role)
        rbac.create_cluster_role_binding(binding)
    else:
        rbac.create_namespaced_role(namespace, role)
        rbac.create_namespaced_role_binding(namespace, binding)
    # The leader Lease lives in the operator's own namespace, as the chart grants it.
    leader = f"{SERVICE_ACCOUNT}-leader"
    rbac.create_namespaced_role(
        namespace, {"metadata": {"name": leader}, "rules": yaml.safe_load(LEADER_RBAC_FILE.read_text())}
    )
    rbac.create_namespaced_role_binding(
        namespace,
        {
            **binding,
            "metadata": {"name": leader},
            "roleRef": {**binding["roleRef"], "kind": "Role", "name": leader},
        },
    )
    return name


class OperatorThread:
    """The operator in a thread of the test process, stopped by its stop flag."""

    def __init__(self, config: OperatorConfig) -> None:
        self.config = config
        self.stop_flag = threading.Event()
        self.ready_flag = threading.Event()
        self.standby_flag = threading.Event()
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, name="tradebot-operator", daemon=True)

    def _run(self) -> None:
        try:
            asyncio.run(
                operator(
                    self.config,
                    stop_flag=self.stop_flag,
                    ready_flag=self.ready_flag,
                    standby_flag=self.standby_flag,
                )
            )
        except BaseException as exc:  # surfaced by start() and stop()
            self.error = exc

    def start(self, leading: bool = True) -> OperatorThread:
        """Until kopf is ready (this copy leads), or with leading=False until it stands by for the Lease."""
        self.thread.start()
        flag = self.ready_flag if leading else self.standby_flag
        wait_for("the operator to start", lambda: flag.is_set() or self.error, timeout=60)
        if self.error:
            raise self.error
        return self

    @property
    def leading(self) -> bool:
        return self.ready_flag.is_set() and self.thread.is_alive()

    def stop(self) -> None:
        self.stop_flag.set()
        self.thread.join(60)
        assert not self.thread.is_alive(), "the operator did not stop"


class Stacks:
    """TradingStacks in one namespace, as the admin sees them."""

    def __init__(self, api: client.ApiClient, namespace: str) -> None:
        self.custom = client.CustomObjectsApi(api)
        self.namespace = namespace

    def create(self, name: str, spec: Mapping[str, Any]) -> dict[str, Any]:
        body = {
            "apiVersion": f"{GROUP}/{VERSION}",
            "kind": "TradingStack",
            "metadata": {"name": name},
            "spec": spec,
        }
        return self.custom.create_namespaced_custom_object(GROUP, VERSION, self.namespace, PLURAL, body)

    def get(self, name: str) -> dict[str, Any] | None:
        try:
            return self.custom.get_namespaced_custom_object(GROUP, VERSION, self.namespace, PLURAL, name)
        except ApiException as e:
            if e.status == 404:
                return None
            raise

    def patch_spec(self, name: str, spec: Mapping[str, Any]) -> dict[str, Any]:
        return self.custom.patch_namespaced_custom_object(
            GROUP, VERSION, self.namespace, PLURAL, name, {"spec": dict(spec)}
        )

    def delete(self, name: str) -> None:
        self.custom.delete_namespaced_custom_object(GROUP, VERSION, self.namespace, PLURAL, name)

    def condition(self, name: str, kind: str) -> dict[str, Any]:
        stack = self.get(name) or {}
        for cond in (stack.get("status") or {}).get("conditions", []):
            if cond["type"] == kind:
                return cond
        return {}

    def phase(self, name: str) -> str | None:
        return ((self.get(name) or {}).get("status") or {}).get("phase")

    def status(self, name: str) -> dict[str, Any]:
        return (self.get(name) or {}).get("status") or {}


def write_heartbeat(redis: Any, service_id: str, age: float = 0.0, errors: int = 0) -> None:
    """What a running service writes (tradebot.common.heartbeat), `age` seconds ago."""
    payload = {
        "service": service_id,
        "status": "running",
        "timestamp": time.time() - age,
        "pid": 1,
        "counters": {},
    }
    redis.set(heartbeat_key(service_id), json.dumps(payload), ex=900)
    if errors:
        redis.set(errors_key(service_id), errors)
    else:
        redis.delete(errors_key(service_id))


def operator_config(kubeconfig: Path, namespace: str, redis_url: str, **extra: Any) -> OperatorConfig:
    """Quick intervals so the tests see reconciles, resyncs and failovers within seconds."""
    values: dict[str, Any] = {
        "namespaces": (namespace,),
        "kubeconfig": str(kubeconfig),
        "redis_url": redis_url,
        "health_interval": 1.0,
        "retry_interval": 2.0,
        "resync_interval": 5.0,
        "lease_duration": 4.0,
        "renew_deadline": 3.0,
        "retry_period": 0.5,
        **extra,
    }
    return OperatorConfig(**values)
