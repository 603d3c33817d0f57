"""What every child object shares: names, labels, owner reference and pod hardening."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from tradebot.providers.registry import DATA_SOURCES
from tradebot_operator import API_VERSION, KIND, MANAGED_BY
from tradebot_operator.spec import Resources, ServiceConfig, StackSpec, parse_spec

Obj = dict[str, Any]

# The services of a stack besides market data, in the order people read them.
CORE_SERVICES = ("strategy", "execution", "storage", "api", "dashboard")
# Ports of the services' HTTP apps; the other services serve probes on PROBE_PORT.
APP_PORTS = {"api": 8000, "dashboard": 8001}
PROBE_PORT = 8080
REDIS_PORT = 6379
POSTGRES_PORT = 5432
# Every pod serves Prometheus metrics here (OpenTelemetry's exporter; the chart's PodMonitor scrapes it).
METRICS_PORT = 9464
CHECKSUM_ANNOTATION = "tradebot.dev/config-checksum"


def child_name(stack: str, component: str) -> str:
    """`<stack>-market-data`, `<stack>-redis`, ...: service ids with hyphens (ARCHITECTURE.md)."""
    return f"{stack}-{component.replace('_', '-')}"


@dataclass(frozen=True)
class Stack:
    """A TradingStack as the builders need it: identity plus the typed, defaulted spec."""

    name: str
    namespace: str
    uid: str
    spec: StackSpec

    @classmethod
    def from_body(cls, body: Mapping[str, Any]) -> Stack:
        """InvalidSpec (naming the field) when the spec breaks a rule."""
        meta = body["metadata"]
        return cls(meta["name"], meta["namespace"], meta.get("uid", ""), parse_spec(body.get("spec")))

    @property
    def market_data_service(self) -> str:
        return DATA_SOURCES[self.spec.data_source].service_id

    @property
    def service_ids(self) -> tuple[str, ...]:
        return (self.market_data_service, *CORE_SERVICES)

    def child_name(self, component: str) -> str:
        return child_name(self.name, component)

    def service_spec(self, service_id: str) -> ServiceConfig:
        services = self.spec.services
        config = (
            services.market_data if service_id == self.market_data_service else getattr(services, service_id)
        )
        assert isinstance(config, ServiceConfig)
        return config


def selector_labels(stack: Stack, component: str) -> dict[str, str]:
    return {
        "app.kubernetes.io/name": "tradebot",
        "app.kubernetes.io/instance": stack.name,
        "app.kubernetes.io/component": component.replace("_", "-"),
    }


def labels(stack: Stack, component: str) -> dict[str, str]:
    return {
        **selector_labels(stack, component),
        "app.kubernetes.io/part-of": "tradebot",
        "app.kubernetes.io/managed-by": MANAGED_BY,
    }


def owner_reference(stack: Stack) -> Obj:
    return {
        "apiVersion": API_VERSION,
        "kind": KIND,
        "name": stack.name,
        "uid": stack.uid,
        "controller": True,
        "blockOwnerDeletion": True,
    }


def metadata(stack: Stack, name: str, component: str) -> Obj:
    return {
        "name": name,
        "namespace": stack.namespace,
        "labels": labels(stack, component),
        "ownerReferences": [owner_reference(stack)],
    }


def pod_security(uid: int, gid: int) -> Obj:
    return {
        "runAsNonRoot": True,
        "runAsUser": uid,
        "runAsGroup": gid,
        "fsGroup": gid,
        "seccompProfile": {"type": "RuntimeDefault"},
    }


def container_security() -> Obj:
    return {
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "capabilities": {"drop": ["ALL"]},
    }


def empty_dir(name: str, size: str = "64Mi") -> Obj:
    return {"name": name, "emptyDir": {"sizeLimit": size}}


def secret_env(variable: str, secret: str, key: str) -> Obj:
    return {"name": variable, "valueFrom": {"secretKeyRef": {"name": secret, "key": key}}}


def resources(spec: Resources) -> Obj:
    """Only the parts present: an empty `limits` would fight the API server's pruning."""
    return {
        part: dict(values)
        for part, values in (("requests", spec.requests), ("limits", spec.limits))
        if values
    }


def claim_template(stack: Stack, component: str, name: str, size: str, storage_class: str | None) -> Obj:
    """A ReadWriteOnce claim labelled like its store, so the operator finds and watches it."""
    spec: Obj = {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": size}}}
    if storage_class:
        spec["storageClassName"] = storage_class
    return {"metadata": {"name": name, "labels": labels(stack, component)}, "spec": spec}
