"""The pure combination of pod readiness, heartbeats and problems into a stack's status."""

from __future__ import annotations

from typing import Any

import pytest

from tradebot.common.heartbeat import health_from_raw
from tradebot_operator.config import OperatorConfig
from tradebot_operator.health import Observation, Problem, Workload, compute_status, merge_conditions
from tradebot_operator.status import merge_patch

SERVICES = ("market_data", "strategy", "execution", "storage", "api", "dashboard")
NOW = 1_000_000.0


def beat(sid: str, age: float | None = 1.0, errors: int = 0):
    raw = None if age is None else f'{{"timestamp": {NOW - age}, "status": "running"}}'.encode()
    return health_from_raw(sid, raw, str(errors).encode(), NOW)


def workloads(**overrides: Workload) -> list[Workload]:
    names = [*SERVICES, "redis", "timescaledb"]
    return [overrides.get(c, Workload(c, f"s-{c.replace('_', '-')}", 1, 1)) for c in names]


def observe(**kw: Any) -> dict[str, Any]:
    values: dict[str, Any] = {
        "generation": 2,
        "reconciled_generation": 2,
        "service_ids": SERVICES,
        "market_data_service": "market_data",
        "workloads": workloads(),
        "heartbeats": {sid: beat(sid) for sid in SERVICES},
    }
    values.update(kw)
    return compute_status(Observation(**values))


def conditions(status: dict[str, Any]) -> dict[str, tuple[str, str]]:
    return {c["type"]: (c["status"], c["reason"]) for c in status["conditions"]}


def test_all_ready_and_beating_is_ready() -> None:
    status = observe()
    assert status["phase"] == "Ready" and status["readyServices"] == "6/6"
    assert conditions(status) == {
        "Ready": ("True", "AllServicesHealthy"),
        "Progressing": ("False", "RolledOut"),
        "Degraded": ("False", "AsExpected"),
    }
    assert status["observedGeneration"] == 2
    assert status["services"]["api"] == {
        "deployment": "s-api",
        "replicas": 1,
        "readyReplicas": 1,
        "state": "healthy",
        "errorCount": 0,
        "heartbeatAge": 1,
    }


@pytest.mark.parametrize(
    ("age", "errors", "state"),
    [(45, 0, "degraded"), (120, 0, "unhealthy"), (400, 0, "dead"), (None, 0, "dead"), (2, 4, "error")],
)
def test_an_unwell_heartbeat_degrades_the_stack(age: float | None, errors: int, state: str) -> None:
    beats = {sid: beat(sid) for sid in SERVICES} | {"execution": beat("execution", age, errors)}
    status = observe(heartbeats=beats)
    assert status["services"]["execution"]["state"] == state
    assert status["phase"] == "Degraded" and status["readyServices"] == "5/6"
    assert conditions(status)["Degraded"] == ("True", "ServiceUnhealthy")
    assert conditions(status)["Ready"] == ("False", "ServiceUnhealthy")
    assert f"execution {state}" in status["conditions"][2]["message"]


def test_pods_not_ready_are_progressing_not_judged_by_heartbeat() -> None:
    status = observe(
        workloads=workloads(strategy=Workload("strategy", "s-strategy", 2, 1)),
        heartbeats={sid: beat(sid) for sid in SERVICES if sid != "strategy"},
    )
    assert status["phase"] == "Progressing"
    assert conditions(status)["Progressing"] == ("True", "RollingOut")
    assert "s-strategy 1/2" in status["conditions"][1]["message"]
    assert conditions(status)["Degraded"][0] == "False"


def test_an_unapplied_generation_is_reconciling() -> None:
    status = observe(reconciled_generation=1)
    assert conditions(status)["Progressing"] == ("True", "Reconciling")
    assert status["observedGeneration"] == 1


def test_configuration_problems_come_first() -> None:
    problem = Problem("CredentialsSecretNotFound", "Secret keys does not exist")
    status = observe(problems=[problem], heartbeats={sid: beat(sid, None) for sid in SERVICES})
    assert status["phase"] == "Degraded"
    degraded = status["conditions"][2]
    assert degraded["reason"] == "CredentialsSecretNotFound"
    assert degraded["message"].startswith("Secret keys does not exist; ")


def test_unreadable_redis_is_degraded_with_unknown_states() -> None:
    status = observe(heartbeats=None, redis_error="Connection refused")
    assert status["services"]["strategy"]["state"] == "unknown"
    assert conditions(status)["Degraded"] == ("True", "HeartbeatsUnavailable")
    assert "Connection refused" in status["conditions"][2]["message"]


def test_a_stopped_service_is_neither_counted_nor_judged() -> None:
    status = observe(
        workloads=workloads(api=Workload("api", "s-api", 0, 0)),
        heartbeats={sid: beat(sid) for sid in SERVICES if sid != "api"},
    )
    assert status["services"]["api"]["state"] == "stopped"
    assert status["phase"] == "Ready" and status["readyServices"] == "5/5"


def test_a_stalled_rollout_is_degraded() -> None:
    stalled = Workload("storage", "s-storage", 1, 0, stalled="ReplicaSet has timed out progressing.")
    status = observe(workloads=workloads(storage=stalled))
    assert conditions(status)["Degraded"] == ("True", "ProgressDeadlineExceeded")


def test_transition_times_change_only_with_the_status() -> None:
    first = merge_conditions(None, observe()["conditions"], "t1")
    assert {c["lastTransitionTime"] for c in first} == {"t1"}
    same = merge_conditions(first, observe()["conditions"], "t2")
    assert {c["lastTransitionTime"] for c in same} == {"t1"}
    changed = merge_conditions(same, observe(reconciled_generation=1)["conditions"], "t3")
    times = {c["type"]: c["lastTransitionTime"] for c in changed}
    assert times == {"Ready": "t3", "Progressing": "t3", "Degraded": "t1"}


def test_the_status_patch_removes_what_is_no_longer_there() -> None:
    old = {
        "services": {
            "market_data": {"state": "healthy"},
            "strategy": {"state": "healthy", "heartbeatAge": 3},
        },
        "endpoints": {"api": "x"},
    }
    new = {
        "services": {"polygon_market_data": {"state": "dead"}, "strategy": {"state": "unknown"}},
        "endpoints": {"api": "x"},
    }
    assert merge_patch(old, new) == {
        "services": {
            "market_data": None,
            "polygon_market_data": {"state": "dead"},
            "strategy": {"state": "unknown", "heartbeatAge": None},
        },
        "endpoints": {"api": "x"},
    }


def test_operator_config_from_the_environment() -> None:
    config = OperatorConfig.from_env(
        {"TRADEBOT_OPERATOR_NAMESPACES": "a, b", "TRADEBOT_OPERATOR_REDIS_URL": "redis://r:1/{namespace}"}
    )
    assert config.namespaces == ("a", "b") and not config.clusterwide
    assert config.stack_redis_url("demo", "a") == "redis://r:1/a"
    default = OperatorConfig.from_env({})
    assert default.clusterwide and default.stack_redis_url("demo", "ns") == "redis://demo-redis.ns.svc:6379"
    assert default.stack_redis_url("demo", "ns", "pw/1") == "redis://:pw%2F1@demo-redis.ns.svc:6379"
