"""Observe a stack (workloads, credentials Secret, heartbeats in its Redis) and write its status.

The combination itself is pure (`health.compute_status`); this module only gathers
its inputs, writes the result when it changed, and posts an Event when the phase changes.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections.abc import Mapping
from datetime import UTC, datetime
from functools import partial
from typing import Any

from redis.exceptions import RedisError

from tradebot.common.heartbeat import ServiceHealth, read_health
from tradebot.providers.registry import DATA_SOURCES, EXECUTION_VENUES
from tradebot_operator import API_VERSION, GROUP, KIND, MANAGED_BY, PLURAL, VERSION
from tradebot_operator.apply import collection_path
from tradebot_operator.builders.backup import COMPONENT as BACKUP
from tradebot_operator.builders.backup import cronjob_name
from tradebot_operator.builders.common import Stack
from tradebot_operator.builders.config import config_name
from tradebot_operator.builders.storage import claim_name, stores
from tradebot_operator.builders.strategy import (
    STRATEGY,
    replica_shards,
    running_tick_shards,
    workload_kind,
)
from tradebot_operator.builders.workloads import endpoints
from tradebot_operator.health import (
    Observation,
    Problem,
    Workload,
    backup_problems,
    backup_status,
    compute_status,
    merge_conditions,
    track_volumes,
)
from tradebot_operator.kube import Kube, KubeError
from tradebot_operator.runtime import Runtime, StackKey
from tradebot_operator.spec import InvalidSpec

log = logging.getLogger(__name__)
ACCEPT_VOLUMES = "tradebot.dev/accept-volumes"


def _workload(component: str, name: str, item: Mapping[str, Any] | None) -> Workload:
    if item is None:
        return Workload(component, name, exists=False)
    spec, status, meta = item.get("spec", {}), item.get("status") or {}, item["metadata"]
    replicas = int(spec.get("replicas", 1))
    current = status.get("observedGeneration", 0) >= meta.get("generation", 0) and (
        replicas == 0 or status.get("updatedReplicas", 0) >= replicas
    )
    stalled = next(
        (
            c.get("message", "")
            for c in status.get("conditions") or []
            if c.get("type") == "Progressing" and c.get("reason") == "ProgressDeadlineExceeded"
        ),
        None,
    )
    return Workload(component, name, replicas, int(status.get("readyReplicas", 0)), True, current, stalled)


def read_workloads(runtime: Runtime, stack: Stack) -> list[Workload]:
    """From the watch cache: no request."""
    kinds = {sid: workload_kind(sid) for sid in stack.service_ids} | {
        s.component: "StatefulSet" for s in stores(stack)
    }
    return [
        _workload(c, stack.child_name(c), runtime.children.get((kind, stack.namespace, stack.child_name(c))))
        for c, kind in kinds.items()
    ]


def credential_problems(kube: Kube, stack: Stack) -> list[Problem]:
    """A missing credentials Secret (or key) is a Degraded reason, never an operator crash."""
    venue = EXECUTION_VENUES[stack.spec.execution.venue]
    keys = tuple(dict.fromkeys((*DATA_SOURCES[stack.spec.data_source].credentials, *venue.credentials)))
    if not keys or stack.spec.credentials is None:
        return []
    name = stack.spec.credentials.secret_ref.name
    try:
        secret = kube.request("GET", f"{collection_path('v1', 'secrets', stack.namespace)}/{name}")
    except KubeError as error:
        if error.status == 404:
            wanted = " and ".join(keys)
            return [
                Problem(
                    "CredentialsSecretNotFound",
                    f"Secret {name} (spec.credentials.secretRef) does not exist in namespace "
                    f"{stack.namespace}; create it with {wanted}",
                )
            ]
        return [Problem("CredentialsSecretUnreadable", f"Secret {name}: {error.message}")]
    missing = [k for k in keys if k not in (secret.get("data") or {})]
    if missing:
        return [Problem("CredentialsKeyMissing", f"Secret {name} lacks {' and '.join(missing)}")]
    return []


async def read_heartbeats(
    runtime: Runtime, key: StackKey, stack: Stack
) -> tuple[dict[str, ServiceHealth] | None, str | None]:
    ids = [sid for sid in stack.service_ids if sid != STRATEGY] + list(replica_shards(stack))
    try:
        found = await read_health(runtime.redis_for(key), ids)
    except (RedisError, OSError) as error:
        return None, str(error) or type(error).__name__
    return {h.service: h for h in found}, None


def observed_claims(runtime: Runtime, stack: Stack) -> dict[str, dict[str, str]]:
    found = {}
    for store in stores(stack):
        claim = runtime.children.get(("PersistentVolumeClaim", stack.namespace, claim_name(stack, store)))
        if claim is not None and not claim["metadata"].get("deletionTimestamp"):
            found[store.component] = {
                "claim": claim["metadata"]["name"],
                "uid": claim["metadata"]["uid"],
                "volumeName": str(claim.get("spec", {}).get("volumeName") or ""),
                "capacity": str((claim.get("status") or {}).get("capacity", {}).get("storage") or ""),
            }
    return found


def observed_backup(runtime: Runtime, stack: Stack) -> dict[str, str] | None:
    if stack.spec.backup is None:
        return None
    jobs = [
        obj
        for obj in runtime.stack_children((stack.namespace, stack.name))
        if obj["kind"] == "Job"
        and (obj["metadata"].get("labels") or {}).get("app.kubernetes.io/component") == BACKUP
    ]
    return backup_status(runtime.children.get(("CronJob", stack.namespace, cronjob_name(stack))), jobs)


async def observe(runtime: Runtime, key: StackKey, body: Mapping[str, Any]) -> Observation:
    generation = body["metadata"].get("generation", 1)
    failures = list((runtime.apply_errors.get(key) or {}).values())
    try:
        stack = Stack.from_body(body)
    except InvalidSpec as error:
        failures = [Problem("InvalidSpec", str(error))]
        return Observation(generation, runtime.reconciled.get(key), (), "", (), {}, problems=failures)
    loop = asyncio.get_running_loop()
    problems, (heartbeats, redis_error) = await asyncio.gather(
        loop.run_in_executor(runtime.status_pool, credential_problems, runtime.kube, stack),
        read_heartbeats(runtime, key, stack),
    )
    accept = ACCEPT_VOLUMES in (body["metadata"].get("annotations") or {})
    recorded = (runtime.written.get(key) or body.get("status") or {}).get("volumes")
    volumes, volume_problems = track_volumes(recorded, observed_claims(runtime, stack), accept)
    backup = observed_backup(runtime, stack)
    live_config = runtime.children.get(("ConfigMap", stack.namespace, config_name(stack)))
    running = running_tick_shards(runtime.written.get(key) or body.get("status"), live_config)
    return Observation(
        generation=generation,
        reconciled_generation=runtime.reconciled.get(key),
        service_ids=stack.service_ids,
        market_data_service=stack.market_data_service,
        workloads=read_workloads(runtime, stack),
        heartbeats=heartbeats,
        redis_error=redis_error,
        problems=[*volume_problems, *problems, *failures, *backup_problems(backup)],
        endpoints=endpoints(stack),
        instances={STRATEGY: replica_shards(stack)},
        tick_shards=stack.spec.tick_shards if running is None else running,
        volumes=volumes,
        backup=backup,
    )


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def merge_patch(old: Mapping[str, Any], new: Mapping[str, Any]) -> dict[str, Any]:
    """A JSON merge patch (RFC 7386) turning old into new: a key that went away is set to null."""
    patch: dict[str, Any] = {key: None for key in old if key not in new}
    for key, value in new.items():
        before = old.get(key)
        if isinstance(value, Mapping) and isinstance(before, Mapping):
            patch[key] = merge_patch(before, value)
        else:
            patch[key] = value
    return patch


def post_phase_event(
    kube: Kube, body: Mapping[str, Any], old_phase: str | None, status: Mapping[str, Any]
) -> None:
    meta = body["metadata"]
    phase = status["phase"]
    ready = next(c for c in status["conditions"] if c["type"] == "Ready")
    now = datetime.now(UTC).isoformat()
    event = {
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {"generateName": f"{meta['name']}.", "namespace": meta["namespace"]},
        "involvedObject": {
            "apiVersion": API_VERSION,
            "kind": KIND,
            "name": meta["name"],
            "namespace": meta["namespace"],
            "uid": meta.get("uid"),
        },
        "type": "Warning" if phase == "Degraded" else "Normal",
        "reason": phase,
        "message": f"phase {old_phase or 'none'} -> {phase}: {ready['reason']}: {ready['message']}"[:1000],
        "source": {"component": MANAGED_BY},
        "reportingComponent": MANAGED_BY,
        "reportingInstance": socket.gethostname()[:128],
        "firstTimestamp": now,
        "lastTimestamp": now,
        "count": 1,
    }
    kube.request("POST", collection_path("v1", "events", meta["namespace"]), body=event)


def _without_ages(status: Mapping[str, Any]) -> dict[str, Any]:
    def ageless(entry: Mapping[str, Any]) -> dict[str, Any]:
        out = {k: v for k, v in entry.items() if k not in ("heartbeatAge", "instances")}
        if "instances" in entry:
            out["instances"] = {hid: ageless(sub) for hid, sub in entry["instances"].items()}
        return out

    return {**status, "services": {sid: ageless(e) for sid, e in (status.get("services") or {}).items()}}


async def refresh(runtime: Runtime, key: StackKey) -> None:
    """Observe one stack and write its status if anything changed (heartbeat ages: now and then)."""
    body = runtime.stacks.get(key)
    if body is None or body["metadata"].get("deletionTimestamp"):
        return
    obs = await observe(runtime, key, body)
    new = compute_status(obs)
    old = runtime.written.get(key) or body.get("status") or {}
    new["conditions"] = merge_conditions(old.get("conditions"), new["conditions"], _now())
    loop = asyncio.get_running_loop()
    since = loop.time() - runtime.written_at.get(key, float("-inf"))
    if new == old or (since < runtime.config.age_refresh and _without_ages(new) == _without_ages(old)):
        return
    if since < runtime.config.min_write_interval and new["phase"] == old.get("phase"):
        # Mid-rollout every pod changes the status: write at most once a second per stack (a phase
        # change at once), so a mass rollout's writes do not queue up before the ones that matter.
        runtime.due[key] = loop.time() + runtime.config.min_write_interval - since
        return
    namespace, name = key
    if not await write_status(runtime, PLURAL, key, old, new):
        return
    runtime.metrics.status_writes.add(1)
    runtime.written[key], runtime.written_at[key] = new, loop.time()
    if ACCEPT_VOLUMES in (body["metadata"].get("annotations") or {}):
        await loop.run_in_executor(runtime.status_pool, forget_acceptance, runtime.kube, key)
    if old.get("phase") != new["phase"]:
        log.info("stack %s/%s is %s", namespace, name, new["phase"])
        await loop.run_in_executor(
            runtime.status_pool, post_phase_event, runtime.kube, body, old.get("phase"), new
        )


async def write_status(
    runtime: Runtime, plural: str, key: tuple[str, str], old: Mapping[str, Any], new: Mapping[str, Any]
) -> bool:
    """Patch one resource's status from `old` to `new` (a merge patch); False if it is gone."""
    namespace, name = key
    path = f"/apis/{GROUP}/{VERSION}/namespaces/{namespace}/{plural}/{name}/status"
    loop = asyncio.get_running_loop()
    try:
        await loop.run_in_executor(
            runtime.status_pool,
            partial(runtime.kube.request, "PATCH", path, {"status": merge_patch(old, new)}, None,
                    "application/merge-patch+json"),
        )  # fmt: skip
    except KubeError as error:
        if error.status == 404:  # deleted meanwhile
            return False
        raise
    return True


def forget_acceptance(kube: Kube, key: StackKey) -> None:
    """The new volumes are recorded: the annotation that accepted them has done its job."""
    namespace, name = key
    kube.request(
        "PATCH", f"/apis/{GROUP}/{VERSION}/namespaces/{namespace}/{PLURAL}/{name}",
        {"metadata": {"annotations": {ACCEPT_VOLUMES: None}}}, None, "application/merge-patch+json",
    )  # fmt: skip


async def status_loop(runtime: Runtime, concurrency: int = 32) -> None:
    """Refresh each stack every `health_interval` seconds, or at once when poked."""
    loop = asyncio.get_running_loop()
    limit = asyncio.Semaphore(concurrency)

    flying: set[asyncio.Task[None]] = set()

    async def one(key: StackKey) -> None:
        async with limit:
            try:
                await refresh(runtime, key)
            except Exception:  # one stack's failure must not stop the others' status
                log.exception("status of %s/%s could not be refreshed", *key)
            finally:  # unless poked meanwhile, the next refresh is one interval away
                if key in runtime.stacks and runtime.due.get(key) == float("inf"):
                    runtime.due[key] = loop.time() + runtime.config.health_interval
                runtime.wake.set()

    # No batches: a stack poked while others refresh starts at once (a slow write holds up no one).
    while True:
        runtime.wake.clear()
        now = loop.time()
        for key in list(runtime.due):
            if key not in runtime.stacks:
                runtime.due.pop(key)
        for key in runtime.stacks:
            runtime.due.setdefault(key, now)
        ready = [key for key, at in runtime.due.items() if at <= now]
        for key in ready:
            runtime.due[key] = float("inf")  # in flight
        for key in ready:
            task = asyncio.create_task(one(key))
            flying.add(task)
            task.add_done_callback(flying.discard)
        wait = min(runtime.due.values(), default=now + runtime.config.health_interval) - now
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(runtime.wake.wait(), timeout=max(0.05, min(wait, 60)))
