"""A Deployment per service, and the ClusterIP Services of the api and the dashboard."""

from __future__ import annotations

from tradebot_operator.builders.common import (
    APP_PORTS,
    CHECKSUM_ANNOTATION,
    PROBE_PORT,
    Obj,
    Stack,
    container_security,
    empty_dir,
    metadata,
    pod_security,
    resources,
    secret_env,
    selector_labels,
)
from tradebot_operator.builders.config import (
    CREDENTIAL_KEYS,
    DATABASE_SERVICES,
    config_checksum,
    config_name,
    db_secret_name,
    environment,
)

# The image's user (non-root); its root filesystem is read-only, /tmp is an emptyDir.
APP_UID = 10001
# One copy at a time: a rolling update would briefly run two feeds or two brokers.
RECREATE = ("market_data", "alpaca_market_data", "polygon_market_data", "execution")


def _probe(path: str, port: int, period: int, failures: int) -> Obj:
    return {
        "httpGet": {"path": path, "port": port},
        "periodSeconds": period,
        "timeoutSeconds": 3,
        "failureThreshold": failures,
    }


def _env(stack: Stack, service_id: str) -> list[Obj]:
    env = [{"name": "HOME", "value": "/tmp"}]
    if service_id in DATABASE_SERVICES:
        env.append(secret_env("DATABASE_URL", db_secret_name(stack), "DATABASE_URL"))
    if service_id == stack.market_data_service:
        secret = (stack.spec.get("credentials") or {}).get("secretRef", {}).get("name")
        for key in CREDENTIAL_KEYS[stack.spec["dataSource"]]:
            env.append(secret_env(key, secret, key))
    return env


def service_deployment(stack: Stack, service_id: str) -> Obj:
    name = stack.child_name(service_id)
    port = APP_PORTS.get(service_id, PROBE_PORT)
    service_spec = stack.service_spec(service_id)
    container = {
        "name": service_id.replace("_", "-"),
        "image": stack.spec["images"]["tradebot"],
        "imagePullPolicy": stack.spec["images"]["pullPolicy"],
        "args": ["service", service_id],
        "envFrom": [{"configMapRef": {"name": config_name(stack)}}],
        "env": _env(stack, service_id),
        "ports": [{"name": "http" if service_id in APP_PORTS else "probes", "containerPort": port}],
        "startupProbe": _probe("/livez", port, period=2, failures=30),
        "livenessProbe": _probe("/livez", port, period=10, failures=3),
        "readinessProbe": _probe("/readyz", port, period=5, failures=2),
        "resources": resources(service_spec["resources"]),
        "securityContext": container_security(),
        "volumeMounts": [{"name": "tmp", "mountPath": "/tmp"}],
    }
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": metadata(stack, name, service_id),
        "spec": {
            "replicas": service_spec["replicas"],
            "revisionHistoryLimit": 3,
            "selector": {"matchLabels": selector_labels(stack, service_id)},
            "strategy": {"type": "Recreate"} if service_id in RECREATE else {"type": "RollingUpdate"},
            "template": {
                "metadata": {
                    "labels": metadata(stack, name, service_id)["labels"],
                    "annotations": {CHECKSUM_ANNOTATION: config_checksum(environment(stack), service_id)},
                },
                "spec": {
                    "automountServiceAccountToken": False,
                    "enableServiceLinks": False,
                    "securityContext": pod_security(APP_UID, APP_UID),
                    "containers": [container],
                    "volumes": [empty_dir("tmp")],
                },
            },
        },
    }


def app_service(stack: Stack, service_id: str) -> Obj:
    """ClusterIP Service in front of the api or the dashboard."""
    port = APP_PORTS[service_id]
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": metadata(stack, stack.child_name(service_id), service_id),
        "spec": {
            "type": "ClusterIP",
            "selector": selector_labels(stack, service_id),
            "ports": [{"name": "http", "port": port, "targetPort": "http", "protocol": "TCP"}],
        },
    }


def endpoints(stack: Stack) -> dict[str, str]:
    """In-cluster URLs of the api and the dashboard, for the status."""
    return {
        sid: f"http://{stack.child_name(sid)}.{stack.namespace}.svc:{port}" for sid, port in APP_PORTS.items()
    }
