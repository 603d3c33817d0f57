"""A Deployment per service, and the ClusterIP Services of the api and the dashboard."""

from __future__ import annotations

from tradebot_operator.builders.common import (
    APP_PORTS,
    CHECKSUM_ANNOTATION,
    METRICS_PORT,
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
from tradebot_operator.builders.config import config_checksum, config_name, environment, secret_variables

# The image's user (non-root); its root filesystem is read-only, /tmp is an emptyDir.
APP_UID = 10001
# One copy at a time: a rolling update would briefly run two feeds or two brokers.
RECREATE = ("market_data", "alpaca_market_data", "polygon_market_data", "execution")
# Read by tradebot.common.telemetry (OpenTelemetry's own variables), the same in every pod.
TELEMETRY_ENV: tuple[Obj, ...] = (
    {"name": "OTEL_METRICS_EXPORTER", "value": "prometheus"},
    {"name": "OTEL_EXPORTER_PROMETHEUS_HOST", "value": "0.0.0.0"},
    {"name": "OTEL_EXPORTER_PROMETHEUS_PORT", "value": str(METRICS_PORT)},
)


def _probe(path: str, port: int, period: int, failures: int) -> Obj:
    return {
        "httpGet": {"path": path, "port": port},
        "periodSeconds": period,
        "timeoutSeconds": 3,
        "failureThreshold": failures,
    }


def service_env(stack: Stack, service_id: str) -> list[Obj]:
    """HOME for the read-only root, every interface (a container's own network: BIND_HOST's default
    is this machine only), telemetry, and each secret the service reads (no other)."""
    env: list[Obj] = [{"name": "HOME", "value": "/tmp"}, {"name": "BIND_HOST", "value": "0.0.0.0"}]
    env += TELEMETRY_ENV
    env += [
        secret_env(variable, secret, key) for variable, secret, key in secret_variables(stack, service_id)
    ]
    return env


def service_deployment(stack: Stack, service_id: str) -> Obj:
    name = stack.child_name(service_id)
    port = APP_PORTS.get(service_id, PROBE_PORT)
    service_spec = stack.service_spec(service_id)
    images = stack.spec.images
    container = {
        "name": service_id.replace("_", "-"),
        "image": images.tradebot,
        "imagePullPolicy": images.pull_policy,
        "args": ["service", service_id],
        "envFrom": [{"configMapRef": {"name": config_name(stack)}}],
        "env": service_env(stack, service_id),
        "ports": [
            {"name": "http" if service_id in APP_PORTS else "probes", "containerPort": port},
            {"name": "metrics", "containerPort": METRICS_PORT},
        ],
        "startupProbe": _probe("/livez", port, period=2, failures=30),
        "livenessProbe": _probe("/livez", port, period=10, failures=3),
        "readinessProbe": _probe("/readyz", port, period=5, failures=2),
        "resources": resources(service_spec.resources),
        "securityContext": container_security(),
        "volumeMounts": [{"name": "tmp", "mountPath": "/tmp"}],
    }
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": metadata(stack, name, service_id),
        "spec": {
            "replicas": service_spec.replicas,
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
