"""Server-side apply of children with one field manager, and removal of children no longer wanted.

Apply is idempotent: re-applying an unchanged object changes nothing (no new
resourceVersion, no event), and `force` takes back fields someone edited by hand.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from tradebot_operator import FIELD_MANAGER, MANAGED_BY
from tradebot_operator.kube import Kube, KubeError

# Kinds of child, in apply order, with their API paths (the RBAC rules grant exactly these).
CHILD_KINDS: dict[str, tuple[str, str]] = {
    "Secret": ("v1", "secrets"),
    "ConfigMap": ("v1", "configmaps"),
    "Service": ("v1", "services"),
    "StatefulSet": ("apps/v1", "statefulsets"),
    "Deployment": ("apps/v1", "deployments"),
}


def collection_path(api_version: str, plural: str, namespace: str) -> str:
    root = "/api/v1" if api_version == "v1" else f"/apis/{api_version}"
    return f"{root}/namespaces/{namespace}/{plural}"


def object_path(kind: str, namespace: str, name: str) -> str:
    api_version, plural = CHILD_KINDS[kind]
    return f"{collection_path(api_version, plural, namespace)}/{name}"


def apply(kube: Kube, obj: Mapping[str, Any]) -> dict[str, Any]:
    meta = obj["metadata"]
    return kube.request(
        "PATCH",
        object_path(obj["kind"], meta["namespace"], meta["name"]),
        body=obj,
        query={"fieldManager": FIELD_MANAGER, "force": "true"},
        content_type="application/apply-patch+yaml",
    )


def get(kube: Kube, kind: str, namespace: str, name: str) -> dict[str, Any] | None:
    try:
        return kube.request("GET", object_path(kind, namespace, name))
    except KubeError as error:
        if error.status == 404:
            return None
        raise


def owned_children(kube: Kube, namespace: str, stack_name: str, stack_uid: str) -> list[dict[str, Any]]:
    """Every child of every kind this stack's controller reference points at."""
    selector = f"app.kubernetes.io/instance={stack_name},app.kubernetes.io/managed-by={MANAGED_BY}"
    found = []
    for kind, (api_version, plural) in CHILD_KINDS.items():
        listing = kube.request(
            "GET", collection_path(api_version, plural, namespace), query={"labelSelector": selector}
        )
        for item in listing.get("items", []):
            owners = item["metadata"].get("ownerReferences") or []
            if any(o.get("uid") == stack_uid and o.get("controller") for o in owners):
                found.append({**item, "kind": kind})
    return found


def prune(
    kube: Kube, existing: Iterable[Mapping[str, Any]], wanted: Iterable[Mapping[str, Any]]
) -> list[str]:
    """Delete owned children not in `wanted` (e.g. the old market-data service); names them."""
    keep = {(o["kind"], o["metadata"]["name"]) for o in wanted}
    removed = []
    for item in existing:
        meta = item["metadata"]
        if (item["kind"], meta["name"]) in keep:
            continue
        try:
            kube.request(
                "DELETE",
                object_path(item["kind"], meta["namespace"], meta["name"]),
                body={"preconditions": {"uid": meta["uid"]}, "propagationPolicy": "Background"},
            )
        except KubeError as error:
            if error.status not in (404, 409):
                raise
        removed.append(f"{item['kind']}/{meta['name']}")
    return removed
