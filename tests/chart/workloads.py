"""What every workload the chart or the operator creates must have, as assertions that name the gap.

A workload is a Deployment, StatefulSet, DaemonSet, Job or a bare Pod. Each must run as non-root
(pod or container securityContext), drop every capability, not escalate privileges, have
resources (requests, and a memory limit); long-running ones must have liveness and readiness
probes (a helm test Pod runs to completion, so it has none).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

Obj = dict[str, Any]

WORKLOAD_KINDS = ("Deployment", "StatefulSet", "DaemonSet", "Job", "Pod")


def pod_spec(obj: Obj) -> Obj:
    if obj["kind"] == "Pod":
        return obj["spec"]
    return obj["spec"]["template"]["spec"]


def workloads(objects: Iterable[Obj]) -> list[Obj]:
    return [o for o in objects if o.get("kind") in WORKLOAD_KINDS]


def runs_to_completion(obj: Obj) -> bool:
    return obj["kind"] == "Job" or (obj["kind"] == "Pod" and obj["spec"].get("restartPolicy") == "Never")


def problems(obj: Obj) -> list[str]:
    """Everything missing from one workload, as `Kind/name container: what` lines."""
    spec = pod_spec(obj)
    pod_sc = spec.get("securityContext") or {}
    where = f"{obj['kind']}/{obj['metadata']['name']}"
    found = []
    containers = [*spec.get("initContainers", []), *spec["containers"]]
    for c in containers:
        sc = c.get("securityContext") or {}
        at = f"{where} container {c['name']}"
        non_root = sc.get("runAsNonRoot", pod_sc.get("runAsNonRoot"))
        if non_root is not True:
            found.append(f"{at}: runAsNonRoot is not true")
        uid = sc.get("runAsUser", pod_sc.get("runAsUser"))
        if uid == 0:
            found.append(f"{at}: runAsUser is 0")
        if "ALL" not in ((sc.get("capabilities") or {}).get("drop") or []):
            found.append(f"{at}: capabilities.drop lacks ALL")
        if (sc.get("capabilities") or {}).get("add"):
            found.append(f"{at}: adds capabilities {sc['capabilities']['add']}")
        if sc.get("allowPrivilegeEscalation") is not False:
            found.append(f"{at}: allowPrivilegeEscalation is not false")
        if sc.get("privileged"):
            found.append(f"{at}: privileged")
        res = c.get("resources") or {}
        if not (res.get("requests") or {}).get("cpu") or not (res.get("requests") or {}).get("memory"):
            found.append(f"{at}: no cpu and memory requests")
        if not (res.get("limits") or {}).get("memory"):
            found.append(f"{at}: no memory limit")
        if not runs_to_completion(obj) and c in spec["containers"]:
            for probe in ("livenessProbe", "readinessProbe"):
                if not c.get(probe):
                    found.append(f"{at}: no {probe}")
    return found
