"""Server-side apply of children with one field manager, patches, and removal of children no longer wanted.

Apply is idempotent: re-applying an unchanged object changes nothing (no new
resourceVersion, no event), and `force` takes back fields someone edited by hand.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping
from typing import Any

from tradebot_operator import FIELD_MANAGER
from tradebot_operator.kube import Kube, KubeError

# Kinds of child, in apply order, with their API paths (the RBAC rules grant exactly these).
CHILD_KINDS: dict[str, tuple[str, str]] = {
    "Secret": ("v1", "secrets"),
    "ConfigMap": ("v1", "configmaps"),
    "Service": ("v1", "services"),
    "PersistentVolumeClaim": ("v1", "persistentvolumeclaims"),
    "StatefulSet": ("apps/v1", "statefulsets"),
    "Deployment": ("apps/v1", "deployments"),
    "CronJob": ("batch/v1", "cronjobs"),
    "NetworkPolicy": ("networking.k8s.io/v1", "networkpolicies"),
}
# Watched but never applied: the Jobs a backup CronJob starts (their outcome is the backup's status).
WATCHED_KINDS: dict[str, tuple[str, str]] = {**CHILD_KINDS, "Job": ("batch/v1", "jobs")}
# Never deleted by pruning: a claim holds data (the stack's deletion takes it, unless Retain).
NEVER_PRUNED = ("PersistentVolumeClaim",)

ChildKey = tuple[str, str, str]  # (kind, namespace, name)


def collection_path(api_version: str, plural: str, namespace: str) -> str:
    root = "/api/v1" if api_version == "v1" else f"/apis/{api_version}"
    return f"{root}/namespaces/{namespace}/{plural}"


def object_path(kind: str, namespace: str, name: str) -> str:
    api_version, plural = WATCHED_KINDS[kind]
    return f"{collection_path(api_version, plural, namespace)}/{name}"


def child_key(obj: Mapping[str, Any]) -> ChildKey:
    meta = obj["metadata"]
    return (obj["kind"], meta["namespace"], meta["name"])


def describe(key: ChildKey) -> str:
    return f"{key[0]}/{key[2]}"


def apply(kube: Kube, obj: Mapping[str, Any]) -> dict[str, Any]:
    meta = obj["metadata"]
    return kube.request(
        "PATCH",
        object_path(obj["kind"], meta["namespace"], meta["name"]),
        body=obj,
        query={"fieldManager": FIELD_MANAGER, "force": "true"},
        content_type="application/apply-patch+yaml",
    )


def patch(kube: Kube, key: ChildKey, body: Any, content_type: str) -> dict[str, Any]:
    """A JSON, merge or strategic merge patch of one object (404 if it is gone: nothing created)."""
    kind, namespace, name = key
    return kube.request(
        "PATCH", object_path(kind, namespace, name), body=body, query={"fieldManager": FIELD_MANAGER},
        content_type=content_type,
    )  # fmt: skip


def get(kube: Kube, kind: str, namespace: str, name: str) -> dict[str, Any] | None:
    try:
        return kube.request("GET", object_path(kind, namespace, name))
    except KubeError as error:
        if error.status == 404:
            return None
        raise


def delete(kube: Kube, key: ChildKey, uid: str, propagation: str = "Background") -> None:
    """Delete one object if it is still the one we saw (uid precondition); gone already is fine."""
    try:
        kube.request(
            "DELETE",
            object_path(*key),
            body={"preconditions": {"uid": uid}, "propagationPolicy": propagation},
        )
    except KubeError as error:
        if error.status not in (404, 409):
            raise


def orphan_and_wait(kube: Kube, key: ChildKey, uid: str, timeout: float = 60.0) -> None:
    """Delete a StatefulSet but not its pods or claims, and wait until it is gone (to recreate it)."""
    delete(kube, key, uid, propagation="Orphan")
    deadline = time.monotonic() + timeout
    while (live := get(kube, *key)) is not None and live["metadata"]["uid"] == uid:
        if time.monotonic() > deadline:
            raise KubeError(504, "Timeout", f"{describe(key)} was not deleted within {timeout:.0f}s")
        time.sleep(0.2)


def prune(kube: Kube, owned: Iterable[Mapping[str, Any]], wanted: Iterable[Mapping[str, Any]]) -> list[str]:
    """Delete owned children not in `wanted` (e.g. the old market-data service); names them."""
    keep = {child_key(o) for o in wanted}
    removed = []
    for item in owned:
        key = child_key(item)
        if key in keep or item["kind"] in NEVER_PRUNED or item["kind"] not in CHILD_KINDS:
            continue
        delete(kube, key, item["metadata"]["uid"])
        removed.append(describe(key))
    return removed
