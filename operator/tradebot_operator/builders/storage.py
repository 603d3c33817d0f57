"""Redis and TimescaleDB: StatefulSets with a claim template each, behind headless Services.

The claims outlive their StatefulSet (persistentVolumeClaimRetentionPolicy Retain), so a
StatefulSet deleted by hand comes back on the same data; the operator makes the stack
their owner instead (`claim_owner_patch`), so they go with the stack unless
spec.storage.reclaimPolicy is Retain.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from tradebot.common.timescaledb import SERVER_SETTINGS
from tradebot_operator.builders.access import REDIS_PASSWORD, auth_secret_name
from tradebot_operator.builders.common import (
    POSTGRES_PORT,
    REDIS_PORT,
    Obj,
    Stack,
    claim_template,
    container_security,
    empty_dir,
    metadata,
    owner_reference,
    pod_security,
    resources,
    secret_env,
    selector_labels,
)
from tradebot_operator.builders.config import DB_NAME, DB_USER, db_secret_name
from tradebot_operator.spec import RedisStore, TimescaleStore, quantity

DATA_VOLUME = "data"


@dataclass(frozen=True)
class Store:
    """What differs between the two stores; everything else is built the same way."""

    component: str  # "redis" or "timescaledb": the spec key and the name suffix
    port: int
    uid: int
    gid: int
    data_path: str
    readiness_command: tuple[str, ...]
    args: tuple[str, ...] = ()
    env: tuple[Obj, ...] = ()
    scratch_paths: tuple[str, ...] = ()  # writable emptyDirs beside a read-only root filesystem


MAXMEMORY_SHARE = 0.75  # of the container's memory limit: the rest is Redis's own overhead


def redis_maxmemory(spec: RedisStore) -> int | None:
    """Bytes Redis may hold: a share of its memory limit, so it refuses writes (noeviction: the
    streams are the pipeline's state, nothing may be evicted) before the kernel kills it."""
    limit = spec.resources.limits.get("memory")
    return int(quantity(limit) * Decimal(MAXMEMORY_SHARE)) if limit else None


def redis_store(stack: Stack) -> Store:
    """Protected mode and the stack's generated password (Kubernetes expands $(REDIS_PASSWORD) from
    the pod's environment, so the spec never holds it); redis-cli reads it from REDISCLI_AUTH."""
    secret = auth_secret_name(stack)
    maxmemory = redis_maxmemory(stack.spec.redis)
    limits = ("--maxmemory", str(maxmemory), "--maxmemory-policy", "noeviction") if maxmemory else ()
    # The alpine image's redis user is 999:1000; it writes only /data.
    return Store(
        component="redis",
        port=REDIS_PORT,
        uid=999,
        gid=1000,
        data_path="/data",
        readiness_command=("redis-cli", "ping"),
        args=(
            "redis-server", "--appendonly", "yes", "--dir", "/data", "--protected-mode", "yes",
            "--requirepass", f"$({REDIS_PASSWORD})", *limits,
        ),
        env=(
            secret_env(REDIS_PASSWORD, secret, REDIS_PASSWORD),
            secret_env("REDISCLI_AUTH", secret, REDIS_PASSWORD),
        ),
    )  # fmt: skip


def timescaledb_store(stack: Stack) -> Store:
    """timescale/timescaledb:*-pg18 is postgres:18-alpine plus the extension.

    PostgreSQL 18 images keep PGDATA in a major-version directory (/var/lib/postgresql/18/docker)
    under their VOLUME /var/lib/postgresql: the claim is mounted there and PGDATA left to the
    image, so lost+found at the volume's root is no problem and a later major can sit beside it.
    """
    secret = db_secret_name(stack)
    return Store(
        component="timescaledb",
        port=POSTGRES_PORT,
        uid=70,  # the alpine image's postgres user
        gid=70,
        data_path="/var/lib/postgresql",
        readiness_command=("pg_isready", "-h", "127.0.0.1", "-U", DB_USER, "-d", DB_NAME),
        # The embedded server's settings (preloaded, quiet), whatever the volume's postgresql.conf says.
        args=(
            "postgres",
            *(arg for name, value in SERVER_SETTINGS.items() for arg in ("-c", f"{name}={value}")),
        ),
        env=(
            secret_env("POSTGRES_USER", secret, "POSTGRES_USER"),
            secret_env("POSTGRES_PASSWORD", secret, "POSTGRES_PASSWORD"),
            secret_env("POSTGRES_DB", secret, "POSTGRES_DB"),
            {"name": "TIMESCALEDB_TELEMETRY", "value": "off"},  # the image's init script: no telemetry job
        ),
        scratch_paths=("/var/run/postgresql", "/tmp"),
    )


def stores(stack: Stack) -> tuple[Store, ...]:
    return (redis_store(stack), timescaledb_store(stack))


def store_spec(stack: Stack, store: Store) -> RedisStore | TimescaleStore:
    return stack.spec.redis if store.component == "redis" else stack.spec.timescaledb


def claim_name(stack: Stack, store: Store) -> str:
    """The claim the StatefulSet controller makes for pod 0: <template>-<statefulset>-0."""
    return f"{DATA_VOLUME}-{stack.child_name(store.component)}-0"


def headless_service(stack: Stack, store: Store) -> Obj:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": metadata(stack, stack.child_name(store.component), store.component),
        "spec": {
            "clusterIP": "None",
            "selector": selector_labels(stack, store.component),
            "ports": [{"name": store.component, "port": store.port, "targetPort": store.port}],
            # Peers and clients find the pod while it starts, as StatefulSets expect.
            "publishNotReadyAddresses": True,
        },
    }


def statefulset(stack: Stack, store: Store) -> Obj:
    name = stack.child_name(store.component)
    spec = store_spec(stack, store)
    scratch = [(f"scratch-{i}", path) for i, path in enumerate(store.scratch_paths)]
    container: Obj = {
        "name": store.component,
        "image": getattr(stack.spec.images, store.component),
        "imagePullPolicy": stack.spec.images.pull_policy,
        "ports": [{"name": store.component, "containerPort": store.port}],
        "livenessProbe": {"tcpSocket": {"port": store.port}, "periodSeconds": 10, "failureThreshold": 6},
        "readinessProbe": {
            "exec": {"command": list(store.readiness_command)},
            "periodSeconds": 5,
            "timeoutSeconds": 3,
        },
        "resources": resources(spec.resources),
        "securityContext": container_security(),
        "volumeMounts": [
            {"name": DATA_VOLUME, "mountPath": store.data_path},
            *({"name": vol, "mountPath": path} for vol, path in scratch),
        ],
    }
    if store.args:
        container["args"] = list(store.args)
    if store.env:
        container["env"] = list(store.env)
    storage = spec.storage
    return {
        "apiVersion": "apps/v1",
        "kind": "StatefulSet",
        "metadata": metadata(stack, name, store.component),
        "spec": {
            "replicas": 1,
            "serviceName": name,
            "selector": {"matchLabels": selector_labels(stack, store.component)},
            "persistentVolumeClaimRetentionPolicy": {"whenDeleted": "Retain", "whenScaled": "Retain"},
            "template": {
                "metadata": {"labels": metadata(stack, name, store.component)["labels"]},
                "spec": {
                    "automountServiceAccountToken": False,
                    "enableServiceLinks": False,
                    "securityContext": pod_security(store.uid, store.gid),
                    "containers": [container],
                    "volumes": [empty_dir(vol) for vol, _ in scratch],
                },
            },
            "volumeClaimTemplates": [
                claim_template(stack, store.component, DATA_VOLUME, storage.size, storage.storage_class_name)
            ],
        },
    }


def claim_owner_patch(stack: Stack, claim: Mapping[str, Any]) -> Obj | None:
    """A strategic merge patch making the stack own a claim (or disown it: Retain); None if it is so."""
    owners = claim["metadata"].get("ownerReferences") or []
    ours = [o for o in owners if o.get("uid") == stack.uid]
    want = stack.spec.storage.reclaim_policy == "Delete"
    if want and not ours:
        # Not the controller and not blocking: the claim only follows the stack to the garbage collector.
        ref = {**owner_reference(stack), "controller": False, "blockOwnerDeletion": False}
        return {"metadata": {"ownerReferences": [ref]}}
    if not want and ours:
        return {"metadata": {"ownerReferences": [{"$patch": "delete", "uid": stack.uid}]}}
    return None


def template_size(statefulset_obj: Mapping[str, Any]) -> str | None:
    """The size in a live StatefulSet's claim template (fixed once created)."""
    templates = statefulset_obj.get("spec", {}).get("volumeClaimTemplates") or []
    if not templates:
        return None
    size = templates[0].get("spec", {}).get("resources", {}).get("requests", {}).get("storage")
    return str(size) if size is not None else None
