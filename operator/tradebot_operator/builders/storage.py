"""Redis and TimescaleDB: StatefulSets with a claim template each, behind headless Services.

Claims are deleted with their StatefulSet (persistentVolumeClaimRetentionPolicy), so
deleting a stack needs no finalizer: the garbage collector removes everything.
"""

from __future__ import annotations

from dataclasses import dataclass

from tradebot_operator.builders.common import (
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
from tradebot_operator.builders.config import DB_NAME, DB_USER, POSTGRES_PORT, REDIS_PORT, db_secret_name

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


def redis_store() -> Store:
    # The alpine image's redis user is 999:1000; it writes only /data.
    return Store(
        component="redis",
        port=REDIS_PORT,
        uid=999,
        gid=1000,
        data_path="/data",
        readiness_command=("redis-cli", "ping"),
        args=("redis-server", "--appendonly", "yes", "--dir", "/data", "--protected-mode", "no"),
    )


def timescaledb_store(stack: Stack) -> Store:
    secret = db_secret_name(stack)
    return Store(
        component="timescaledb",
        port=POSTGRES_PORT,
        uid=70,  # the alpine image's postgres user
        gid=70,
        data_path="/var/lib/postgresql/data",
        readiness_command=("pg_isready", "-h", "127.0.0.1", "-U", DB_USER, "-d", DB_NAME),
        env=(
            secret_env("POSTGRES_USER", secret, "POSTGRES_USER"),
            secret_env("POSTGRES_PASSWORD", secret, "POSTGRES_PASSWORD"),
            secret_env("POSTGRES_DB", secret, "POSTGRES_DB"),
            # A subdirectory: the volume's root may hold lost+found, which initdb refuses.
            {"name": "PGDATA", "value": "/var/lib/postgresql/data/pgdata"},
        ),
        scratch_paths=("/var/run/postgresql", "/tmp"),
    )


def stores(stack: Stack) -> tuple[Store, ...]:
    return (redis_store(), timescaledb_store(stack))


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
    spec = stack.spec[store.component]
    scratch = [(f"scratch-{i}", path) for i, path in enumerate(store.scratch_paths)]
    container: Obj = {
        "name": store.component,
        "image": stack.spec["images"][store.component],
        "imagePullPolicy": stack.spec["images"]["pullPolicy"],
        "ports": [{"name": store.component, "containerPort": store.port}],
        "livenessProbe": {"tcpSocket": {"port": store.port}, "periodSeconds": 10, "failureThreshold": 6},
        "readinessProbe": {
            "exec": {"command": list(store.readiness_command)},
            "periodSeconds": 5,
            "timeoutSeconds": 3,
        },
        "resources": resources(spec["resources"]),
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
    claim: Obj = {
        "metadata": {"name": DATA_VOLUME},
        "spec": {
            "accessModes": ["ReadWriteOnce"],
            "resources": {"requests": {"storage": spec["storage"]["size"]}},
        },
    }
    if spec["storage"].get("storageClassName"):
        claim["spec"]["storageClassName"] = spec["storage"]["storageClassName"]
    return {
        "apiVersion": "apps/v1",
        "kind": "StatefulSet",
        "metadata": metadata(stack, name, store.component),
        "spec": {
            "replicas": 1,
            "serviceName": name,
            "selector": {"matchLabels": selector_labels(stack, store.component)},
            "persistentVolumeClaimRetentionPolicy": {"whenDeleted": "Delete", "whenScaled": "Retain"},
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
            "volumeClaimTemplates": [claim],
        },
    }
