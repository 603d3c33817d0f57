"""The strategy service as a StatefulSet: replica k of R is the pod with ordinal k.

Replica k owns the tick shards n with n mod R = k (ARCHITECTURE.md), so it needs a
stable index: the pod's ordinal (the `apps.kubernetes.io/pod-index` label the
StatefulSet controller sets) becomes REPLICA_INDEX, the replica count REPLICA_COUNT,
and the replica's heartbeat is `service:strategy-<k>:heartbeat`. The pod is the
Deployment's pod (same image, probes, hardening, environment), so the two never drift
apart; a headless Service gives each replica its DNS name and its metrics port.
A stack made before this ran strategy as a Deployment: that Deployment is no longer
wanted, so the reconcile's pruning deletes it (the shard leases keep the old and new
pods from reading a shard at once while it goes).
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

from tradebot.common.keys import owned_shards
from tradebot_operator.builders.common import METRICS_PORT, Obj, Stack, metadata, selector_labels
from tradebot_operator.builders.workloads import service_deployment

STRATEGY = "strategy"
POD_INDEX_LABEL = "apps.kubernetes.io/pod-index"


def workload_kind(service_id: str) -> str:
    return "StatefulSet" if service_id == STRATEGY else "Deployment"


def workload(stack: Stack, service_id: str) -> Obj:
    """The Deployment of a service, or the StatefulSet of the strategy service."""
    return strategy_statefulset(stack) if service_id == STRATEGY else service_deployment(stack, service_id)


def replica_shards(stack: Stack) -> dict[str, list[int]]:
    """Heartbeat id of each strategy replica -> the tick shards it owns."""
    count, shards = stack.spec.services.strategy.replicas, stack.spec.tick_shards
    return {f"{STRATEGY}-{k}": owned_shards(k, count, shards) for k in range(count)}


def strategy_statefulset(stack: Stack) -> Obj:
    deployment = service_deployment(stack, STRATEGY)
    template = copy.deepcopy(deployment["spec"]["template"])
    replicas = stack.spec.services.strategy.replicas
    template["spec"]["containers"][0]["env"] += [
        {
            "name": "REPLICA_INDEX",
            "valueFrom": {"fieldRef": {"fieldPath": f"metadata.labels['{POD_INDEX_LABEL}']"}},
        },
        {"name": "REPLICA_COUNT", "value": str(max(replicas, 1))},
    ]
    return {
        "apiVersion": "apps/v1",
        "kind": "StatefulSet",
        "metadata": deployment["metadata"],
        "spec": {
            "replicas": replicas,
            "serviceName": stack.child_name(STRATEGY),
            "selector": deployment["spec"]["selector"],
            # Replicas do not wait for each other: the shard leases order the hand-over.
            "podManagementPolicy": "Parallel",
            "updateStrategy": {"type": "RollingUpdate"},
            "revisionHistoryLimit": deployment["spec"]["revisionHistoryLimit"],
            "template": template,
        },
    }


def strategy_service(stack: Stack) -> Obj:
    """The StatefulSet's headless Service: a stable DNS name per replica, and its metrics port."""
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": metadata(stack, stack.child_name(STRATEGY), STRATEGY),
        "spec": {
            "clusterIP": "None",
            "selector": selector_labels(stack, STRATEGY),
            "ports": [{"name": "metrics", "port": METRICS_PORT, "targetPort": "metrics"}],
            "publishNotReadyAddresses": True,
        },
    }


def running_tick_shards(status: Mapping[str, Any] | None, config: Mapping[str, Any] | None) -> int | None:
    """The shard count the stack runs with: as its status recorded it, else as its live ConfigMap says."""
    recorded = (status or {}).get("tickShards")
    if recorded is None:
        recorded = ((config or {}).get("data") or {}).get("TICK_SHARDS")
    try:
        return int(recorded) if recorded is not None else None
    except ValueError:
        return None


def reshard_refusal(stack: Stack, running: int | None) -> str | None:
    """Why the spec's tickShards is not applied (None: it is the stack's): re-sharding is a migration."""
    wanted = stack.spec.tick_shards
    if running is None or running == wanted:
        return None
    return (
        f"spec.tickShards is {wanted} but the stack runs {running} tick shards; the shard count is part "
        f"of the stack's identity (each symbol's stream, checkpoints and leases are per shard), so the "
        f"change is not applied: set tickShards back to {running}, or move to a new stack (README: "
        f"re-sharding)"
    )
