"""Pure: a stack's status from what was observed (pods' readiness, heartbeats, config problems).

Heartbeat states are the system's own (`tradebot.common.health`): healthy, degraded,
unhealthy, dead, error. A service is judged on its heartbeat only once its pods are
ready; before that it is still rolling out. The phase follows the conditions:
Degraded wins over Progressing, and Ready means neither.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from tradebot.common.health import HealthState
from tradebot.common.heartbeat import ServiceHealth


@dataclass(frozen=True)
class Workload:
    """A Deployment or StatefulSet as observed (absent: exists=False)."""

    component: str  # a service id, "redis" or "timescaledb"
    name: str
    replicas: int = 0
    ready: int = 0
    exists: bool = True
    current: bool = True  # the controller has seen the latest spec and every pod is updated
    stalled: str | None = None  # why the rollout cannot finish (ProgressDeadlineExceeded), if it cannot

    @property
    def rolled_out(self) -> bool:
        return self.exists and self.current and self.ready >= self.replicas


@dataclass(frozen=True)
class Problem:
    """Something wrong with the stack's configuration, e.g. its credentials Secret is missing."""

    reason: str
    message: str


@dataclass(frozen=True)
class Observation:
    generation: int
    reconciled_generation: int | None
    service_ids: Sequence[str]
    market_data_service: str
    workloads: Sequence[Workload]
    heartbeats: Mapping[str, ServiceHealth] | None  # None: Redis could not be read
    redis_error: str | None = None
    problems: Sequence[Problem] = ()
    endpoints: Mapping[str, str] = field(default_factory=dict)
    # A replicated service's heartbeat ids and the shards each owns: {"strategy": {"strategy-0": [0, 2]}}.
    instances: Mapping[str, Mapping[str, Sequence[int]]] = field(default_factory=dict)
    volumes: Mapping[str, Mapping[str, str]] = field(default_factory=dict)  # as recorded (track_volumes)
    tick_shards: int | None = None  # the shard count the stack runs with (status.tickShards: its identity)
    backup: Mapping[str, str] | None = None  # status.backup (backup_status), when backups are on


def _condition(kind: str, ok: bool, reason: str, message: str, generation: int) -> dict[str, Any]:
    return {
        "type": kind,
        "status": "True" if ok else "False",
        "reason": reason,
        "message": message,
        "observedGeneration": generation,
    }


# Worst last: a replicated service is as well as its worst replica.
SEVERITY = ("healthy", "degraded", "unhealthy", "error", "dead")


def _health_fields(health: ServiceHealth | None, known: bool) -> dict[str, Any]:
    if not known or health is None:
        return {"state": "unknown"}
    out: dict[str, Any] = {"state": health.state.value, "errorCount": health.error_count}
    if health.heartbeat_age is not None:
        out["heartbeatAge"] = int(health.heartbeat_age)
    return out


def _service_entry(
    workload: Workload | None,
    health: ServiceHealth | None,
    known: bool,
    instances: Mapping[str, Sequence[int]] | None,
    heartbeats: Mapping[str, ServiceHealth],
) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "deployment": workload.name if workload else "",
        "replicas": workload.replicas if workload else 0,
        "readyReplicas": workload.ready if workload else 0,
    }
    if workload and workload.replicas == 0:
        return {**entry, "state": "stopped"}
    entry.update(_health_fields(health, known))
    if instances:
        entry["instances"] = {
            hid: {**_health_fields(heartbeats.get(hid), known), "shards": list(shards)}
            for hid, shards in instances.items()
        }
    return entry


def fold_instances(
    heartbeats: Mapping[str, ServiceHealth], instances: Mapping[str, Mapping[str, Sequence[int]]]
) -> dict[str, ServiceHealth]:
    """Each replicated service gets the health of its worst replica (which names that replica)."""
    folded = dict(heartbeats)
    for sid, members in instances.items():
        found = [heartbeats[hid] for hid in members if hid in heartbeats]
        if found:
            folded[sid] = max(found, key=lambda h: SEVERITY.index(h.state.value))
    return folded


def _describe(sid: str, health: ServiceHealth) -> str:
    if health.heartbeat_age is None:
        return f"{sid} {health.state.value} (no heartbeat)"
    if health.state is HealthState.ERROR:
        return f"{sid} error ({health.error_count} errors)"
    return f"{sid} {health.state.value} (heartbeat {int(health.heartbeat_age)}s old)"


def compute_status(obs: Observation) -> dict[str, Any]:
    """The status (conditions without transition times; see `merge_conditions`)."""
    by_component = {w.component: w for w in obs.workloads}
    known = obs.heartbeats is not None
    beats = obs.heartbeats or {}
    heartbeats = fold_instances(beats, obs.instances)
    services = {
        sid: _service_entry(by_component.get(sid), heartbeats.get(sid), known, obs.instances.get(sid), beats)
        for sid in obs.service_ids
    }

    waiting = [w for w in obs.workloads if not w.rolled_out]
    running = [sid for sid in obs.service_ids if (w := by_component.get(sid)) and w.replicas > 0]
    judged = [sid for sid in running if by_component[sid].rolled_out]
    unwell = [sid for sid in judged if known and heartbeats.get(sid) and heartbeats[sid].state != "healthy"]
    healthy = [sid for sid in judged if known and sid not in unwell and heartbeats.get(sid)]

    # Degraded: configuration first (a person must act), then stuck rollouts, then heartbeats.
    degraded: list[Problem] = list(obs.problems)
    degraded += [
        Problem("ProgressDeadlineExceeded", f"{w.name}: {w.stalled}") for w in obs.workloads if w.stalled
    ]
    if not known and judged:
        degraded.append(Problem("HeartbeatsUnavailable", f"cannot read heartbeats: {obs.redis_error}"))
    if unwell:
        message = ", ".join(
            _describe(h.service, h)
            for sid in unwell
            for h in [beats[hid] for hid in obs.instances.get(sid, ()) if hid in beats] or [heartbeats[sid]]
            if h.state != "healthy"
        )
        degraded.append(Problem("ServiceUnhealthy", message))

    if obs.reconciled_generation != obs.generation:
        progressing = Problem("Reconciling", f"applying generation {obs.generation}")
    elif waiting:
        parts = [f"{w.name} {w.ready}/{w.replicas}" if w.exists else f"{w.name} missing" for w in waiting]
        progressing = Problem("RollingOut", "waiting for " + ", ".join(parts))
    else:
        progressing = None

    gen = obs.generation
    is_degraded = bool(degraded)
    conditions = [
        _condition(
            "Ready",
            not is_degraded and progressing is None,
            degraded[0].reason
            if is_degraded
            else progressing.reason
            if progressing
            else "AllServicesHealthy",
            "; ".join(p.message for p in degraded)
            if is_degraded
            else progressing.message
            if progressing
            else f"{len(healthy)} services healthy",
            gen,
        ),
        _condition(
            "Progressing",
            progressing is not None,
            progressing.reason if progressing else "RolledOut",
            progressing.message if progressing else "every workload is up to date and ready",
            gen,
        ),
        _condition(
            "Degraded",
            is_degraded,
            degraded[0].reason if is_degraded else "AsExpected",
            "; ".join(p.message for p in degraded) if is_degraded else "no problems",
            gen,
        ),
    ]
    phase = "Degraded" if is_degraded else "Progressing" if progressing else "Ready"
    return {
        "observedGeneration": obs.reconciled_generation or 0,
        "phase": phase,
        "readyServices": f"{len(healthy)}/{len(running)}",
        "activeMarketData": obs.market_data_service,
        "conditions": conditions,
        "services": services,
        "endpoints": dict(obs.endpoints),
        **({"tickShards": obs.tick_shards} if obs.tick_shards is not None else {}),
        **({"volumes": {k: dict(v) for k, v in obs.volumes.items()}} if obs.volumes else {}),
        **({"backup": dict(obs.backup)} if obs.backup is not None else {}),
    }


def track_volumes(
    recorded: Mapping[str, Mapping[str, str]] | None,
    observed: Mapping[str, Mapping[str, str]],
    accept: bool = False,
) -> tuple[dict[str, dict[str, str]], list[Problem]]:
    """The volumes to record, and a problem for each store whose claim is not the one first seen.

    A claim recreated (by hand, or because it was deleted with its pod) is empty: the stack
    must not look Ready on it. The first claim seen is recorded; a different one is reported
    until someone accepts it (`accept`: the stack's accept-volumes annotation).
    """
    record = {k: dict(v) for k, v in (recorded or {}).items()}
    problems = []
    for store, claim in observed.items():
        before = record.get(store)
        if before is None or accept or not before.get("uid"):
            record[store] = dict(claim)
        elif before["uid"] != claim["uid"]:
            problems.append(
                Problem(
                    "DataVolumeReplaced",
                    f"{store}: claim {claim['claim']} is new (volume {claim.get('volumeName') or 'pending'},"
                    f" was {before.get('volumeName') or before['uid']}); its data is not the stack's. Restore"
                    " a backup (tradebot db restore), then accept it: kubectl annotate tstack NAME"
                    " tradebot.dev/accept-volumes=true",
                )
            )
        elif claim.get("volumeName") or claim.get("capacity"):
            record[store] = {**before, **{k: v for k, v in claim.items() if v}}
    return record, problems


def backup_status(cronjob: Mapping[str, Any] | None, jobs: Sequence[Mapping[str, Any]]) -> dict[str, str]:
    """status.backup from the CronJob and its newest Job (Running, Succeeded or Failed)."""
    out: dict[str, str] = {}
    if cronjob is not None:
        out["schedule"] = str(cronjob.get("spec", {}).get("schedule", ""))
        for key in ("lastScheduleTime", "lastSuccessfulTime"):
            if (cronjob.get("status") or {}).get(key):
                out[key] = str(cronjob["status"][key])
    if jobs:
        newest = max(jobs, key=lambda j: str(j["metadata"].get("creationTimestamp", "")))
        out["lastJob"] = newest["metadata"]["name"]
        conditions = {c.get("type"): c for c in (newest.get("status") or {}).get("conditions") or []}
        if conditions.get("Complete", {}).get("status") == "True":
            out["lastResult"] = "Succeeded"
        elif conditions.get("Failed", {}).get("status") == "True":
            out["lastResult"] = "Failed"
            out["message"] = str(
                conditions["Failed"].get("message") or conditions["Failed"].get("reason", "")
            )
        else:
            out["lastResult"] = "Running"
    return out


def backup_problems(backup: Mapping[str, str] | None) -> list[Problem]:
    if backup and backup.get("lastResult") == "Failed":
        return [Problem("BackupFailed", f"backup {backup['lastJob']} failed: {backup.get('message', '')}")]
    return []


def merge_conditions(
    old: Sequence[Mapping[str, Any]] | None, new: Sequence[dict[str, Any]], now: str
) -> list[dict[str, Any]]:
    """Keep lastTransitionTime while a condition's status stays the same (the standard contract)."""
    previous = {c.get("type"): c for c in old or ()}
    merged = []
    for cond in new:
        before = previous.get(cond["type"])
        kept = (
            before.get("lastTransitionTime", now)
            if before and before.get("status") == cond["status"]
            else now
        )
        merged.append({**cond, "lastTransitionTime": kept})
    return merged
