"""Who reaches what in a stack: its generated credentials, their Secret, and NetworkPolicies.

The operator generates a stack's database password, its Redis password and its AUTH_TOKEN
once and keeps them in Secrets (`<stack>-db`, `<stack>-auth`); each pod gets only the ones
the settings it reads need (ReadBy). NetworkPolicies let only the stack's own pods that use
them reach Redis and TimescaleDB (and the operator, which reads heartbeats), and the api
and dashboard only from the stack's namespace unless spec.network opens them.
"""

from __future__ import annotations

import base64
import hashlib
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from tradebot.common.settings import readers
from tradebot_operator.builders.common import (
    APP_PORTS,
    METRICS_PORT,
    POSTGRES_PORT,
    REDIS_PORT,
    Obj,
    Stack,
    metadata,
    selector_labels,
)

AUTH_TOKEN, REDIS_PASSWORD, REDIS_URL = "AUTH_TOKEN", "REDIS_PASSWORD", "REDIS_URL"
OPERATOR_SELECTOR = {"app.kubernetes.io/name": "tradebot", "app.kubernetes.io/component": "operator"}
"""The chart's operator pods (tradebot.selectorLabels with component "operator")."""
BACKUP_COMPONENT = "backup"  # builders.backup's Jobs read DATABASE_URL too
BACKTEST_COMPONENT = "backtest"  # so do the Backtest resource's Jobs


def generate_secret() -> str:
    """URL-safe, so it goes into a URL unquoted; kept in its Secret across reconciles."""
    return secrets.token_urlsafe(24)


@dataclass(frozen=True)
class StackAccess:
    """What the operator supplies beside the spec: the stack's generated credentials, and the
    namespace the operator runs in ("" when unknown: its pods are then matched in any namespace)."""

    db_password: str
    redis_password: str
    auth_token: str
    operator_namespace: str = ""

    @classmethod
    def generate(cls, operator_namespace: str = "") -> StackAccess:
        return cls(generate_secret(), generate_secret(), generate_secret(), operator_namespace)


def auth_secret_name(stack: Stack) -> str:
    return stack.child_name("auth")


def redis_url(stack: Stack, password: str) -> str:
    return f"redis://:{password}@{stack.child_name('redis')}:{REDIS_PORT}"


def auth_secret(stack: Stack, access: StackAccess) -> Obj:
    """`<stack>-auth`: the API's token, Redis's password and the URL that carries it."""
    values = {
        AUTH_TOKEN: access.auth_token,
        REDIS_PASSWORD: access.redis_password,
        REDIS_URL: redis_url(stack, access.redis_password),
    }
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": metadata(stack, auth_secret_name(stack), "auth"),
        "type": "Opaque",
        "data": {key: base64.b64encode(value.encode()).decode() for key, value in values.items()},
    }


def secret_value(secret: Mapping[str, Any] | None, key: str) -> str | None:
    """One value of a Secret as the API returns it (base64 data), if it is there."""
    raw = ((secret or {}).get("data") or {}).get(key)
    return base64.b64decode(raw).decode() if raw else None


def components_reading(stack: Stack, setting: str) -> list[str]:
    """The pod components of this stack's services that read `setting` (ReadBy), as labelled."""
    reading = readers(setting)
    return sorted(sid.replace("_", "-") for sid in stack.service_ids if sid in reading)


def _stack_pods(stack: Stack, components: list[str]) -> Obj:
    """A peer: this stack's pods (same namespace) of these components."""
    match = {k: v for k, v in selector_labels(stack, "").items() if k != "app.kubernetes.io/component"}
    expression = {"key": "app.kubernetes.io/component", "operator": "In", "values": components}
    return {"podSelector": {"matchLabels": match, "matchExpressions": [expression]}}


def _operator_pods(access: StackAccess) -> Obj:
    namespaces = (
        {"matchLabels": {"kubernetes.io/metadata.name": access.operator_namespace}}
        if access.operator_namespace
        else {}
    )
    return {"namespaceSelector": namespaces, "podSelector": {"matchLabels": dict(OPERATOR_SELECTOR)}}


def _policy(stack: Stack, component: str, ingress: list[Obj]) -> Obj:
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": metadata(stack, stack.child_name(component), component),
        "spec": {
            "podSelector": {"matchLabels": selector_labels(stack, component)},
            "policyTypes": ["Ingress"],
            "ingress": ingress,
        },
    }


def network_policies(stack: Stack, access: StackAccess) -> list[Obj]:
    """Redis from the stack's pods that use it and the operator; TimescaleDB from those that
    read DATABASE_URL, the backups, the backtests and the operator (their results); api and
    dashboard from the namespace (or as opened), their metrics from anywhere (a Prometheus
    elsewhere scrapes them)."""
    network = stack.spec.network
    apps_from: list[Obj] = [{"podSelector": {}}]  # any pod of this namespace
    apps_from += [
        {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": name}}}
        for name in network.app_namespaces
    ]
    app_rule: Obj = {"ports": [{"port": "http", "protocol": "TCP"}]}
    if not network.open_apps:
        app_rule["from"] = apps_from
    metrics = {"ports": [{"port": METRICS_PORT, "protocol": "TCP"}]}
    database_users = sorted(
        [*components_reading(stack, "database_url"), BACKUP_COMPONENT, BACKTEST_COMPONENT]
    )
    return [
        _policy(stack, "redis", [{
            "from": [_stack_pods(stack, components_reading(stack, "redis_url")), _operator_pods(access)],
            "ports": [{"port": REDIS_PORT, "protocol": "TCP"}],
        }]),
        _policy(stack, "timescaledb", [{
            "from": [_stack_pods(stack, database_users), _operator_pods(access)],  # it reads backtests
            "ports": [{"port": POSTGRES_PORT, "protocol": "TCP"}],
        }]),
        *(_policy(stack, sid, [app_rule, metrics]) for sid in APP_PORTS),
    ]  # fmt: skip


SECRETS_ANNOTATION = "tradebot.dev/secrets-checksum"


def roll_on_rotation(stack: Stack, access: StackAccess, children: list[Obj]) -> list[Obj]:
    """Each workload's pods carry a digest of the generated credentials they read, so replacing
    one (a rotated AUTH_TOKEN or Redis password) restarts exactly its readers together: a pod's
    environment is fixed when it starts."""
    generated = {
        (auth_secret_name(stack), key): value
        for key, value in (
            (AUTH_TOKEN, access.auth_token),
            (REDIS_PASSWORD, access.redis_password),
            (REDIS_URL, redis_url(stack, access.redis_password)),
        )
    }
    for obj in children:
        if obj["kind"] not in ("Deployment", "StatefulSet"):
            continue
        template = obj["spec"]["template"]
        refs = sorted(
            (ref["name"], ref["key"])
            for container in template["spec"]["containers"]
            for variable in container.get("env", ())
            if (ref := variable.get("valueFrom", {}).get("secretKeyRef"))
            and (ref["name"], ref["key"]) in generated
        )
        if refs:
            digest = hashlib.sha256("\n".join(generated[ref] for ref in refs).encode()).hexdigest()[:16]
            template["metadata"].setdefault("annotations", {})[SECRETS_ANNOTATION] = digest
    return children
