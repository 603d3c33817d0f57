"""Pure: does a live child still say what the operator wants, and what did someone else add?

`matches` lets a resync skip the API server for every child that is as built (a wanted
field must be present and equal in the live object; what the server adds is fine).
`foreign_drift` finds what server-side apply cannot take back because another field
manager owns it — an env var added to a container, a key added to the ConfigMap, a
Service port changed by hand — and returns the JSON patch that puts the operator's
version back, guarded by the resourceVersion it was computed from.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

JsonPatch = list[dict[str, Any]]


def matches(wanted: Any, live: Any) -> bool:
    """True when every field of `wanted` is in `live` with the same value (lists: same length)."""
    if isinstance(wanted, Mapping):  # the API server drops empty lists and maps: absent is equal
        return isinstance(live, Mapping) and all(
            matches(v, live[k]) if k in live else v in ([], {}) for k, v in wanted.items()
        )
    if isinstance(wanted, Sequence) and not isinstance(wanted, str):
        if not isinstance(live, Sequence) or isinstance(live, str) or len(wanted) != len(live):
            return False
        return all(matches(w, v) for w, v in zip(wanted, live, strict=True))
    if isinstance(wanted, bool) or isinstance(live, bool):
        return wanted is live
    if isinstance(wanted, int | float) and isinstance(live, int | float):
        return float(wanted) == float(live)
    return bool(wanted == live)


def _pointer(*parts: object) -> str:
    return "".join("/" + str(p).replace("~", "~0").replace("/", "~1") for p in parts)


def _names(items: Sequence[Mapping[str, Any]] | None, key: str = "name") -> list[Any]:
    return [item.get(key) for item in items or ()]


def _container_drift(wanted_pod: Mapping[str, Any], live_pod: Mapping[str, Any], base: str) -> JsonPatch:
    ops: JsonPatch = []
    wanted = {c["name"]: c for c in wanted_pod.get("containers", [])}
    for index, container in enumerate(live_pod.get("containers") or []):
        mine = wanted.get(container.get("name"))
        if mine is None:  # a sidecar someone injects is theirs to keep
            continue
        for field in ("env", "envFrom"):
            if field == "envFrom":
                extra = len(container.get(field) or []) != len(mine.get(field) or [])
            else:
                extra = not set(_names(container.get(field))) <= set(_names(mine.get(field)))
            if extra:
                ops.append(
                    {"op": "add", "path": f"{base}/containers/{index}/{field}", "value": mine.get(field, [])}
                )
    return ops


def foreign_drift(wanted: Mapping[str, Any], live: Mapping[str, Any]) -> JsonPatch:
    """The JSON patch undoing additions server-side apply leaves alone; [] when there are none."""
    kind = wanted["kind"]
    ops: JsonPatch = []
    if kind in ("ConfigMap", "Secret"):
        if set(live.get("data") or {}) - set(wanted.get("data") or {}):
            ops.append({"op": "add", "path": "/data", "value": wanted.get("data") or {}})
    elif kind == "Service":
        key = ("port", "protocol")
        mine = {tuple(p.get(k, "TCP") for k in key) for p in wanted["spec"]["ports"]}
        if {tuple(p.get(k, "TCP") for k in key) for p in live.get("spec", {}).get("ports") or []} != mine:
            ops.append({"op": "add", "path": "/spec/ports", "value": wanted["spec"]["ports"]})
    elif kind in ("Deployment", "StatefulSet"):
        ops += _container_drift(
            wanted["spec"]["template"]["spec"],
            live.get("spec", {}).get("template", {}).get("spec", {}),
            "/spec/template/spec",
        )
    if not ops:
        return []
    guard = {"op": "test", "path": "/metadata/resourceVersion", "value": live["metadata"]["resourceVersion"]}
    return [guard, *ops]
