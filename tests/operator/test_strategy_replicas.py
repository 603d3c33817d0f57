"""Strategy scale-out on Kubernetes (issue 11): a StatefulSet whose ordinals are the replica indexes,
strategies typed from the registry, and one heartbeat per replica in the status."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tradebot.common.heartbeat import health_from_raw
from tradebot.common.keys import owned_shards
from tradebot.common.settings import Settings
from tradebot.strategy.service import replica_service_id
from tradebot_operator.builders import Stack, StackAccess, build_children
from tradebot_operator.builders.config import environment
from tradebot_operator.builders.strategy import (
    POD_INDEX_LABEL,
    replica_shards,
    reshard_refusal,
    running_tick_shards,
)
from tradebot_operator.crd import spec_schema
from tradebot_operator.health import Observation, Workload, compute_status
from tradebot_operator.spec import InvalidSpec, parse_spec
from tradebot_operator.status import _without_ages

NOW = 1_000_000.0

ACCESS = StackAccess.generate("tradebot")


def body(**spec: Any) -> dict[str, Any]:
    return {
        "metadata": {"name": "demo", "namespace": "trading", "uid": "uid-1", "generation": 1},
        "spec": {"symbols": ["AAPL", "MSFT"], **spec},
    }


def child(kind: str, name: str, **spec: Any) -> dict[str, Any]:
    objs = build_children(body(**spec), ACCESS)
    return next(o for o in objs if (o["kind"], o["metadata"]["name"]) == (kind, name))


def test_strategy_is_a_statefulset_whose_ordinal_is_the_replica_index() -> None:
    sts = child("StatefulSet", "demo-strategy", services={"strategy": {"replicas": 3}})
    deployment_like = child("Deployment", "demo-execution")
    assert sts["spec"]["replicas"] == 3 and sts["spec"]["serviceName"] == "demo-strategy"
    assert sts["spec"]["podManagementPolicy"] == "Parallel"
    assert sts["spec"]["selector"]["matchLabels"]["app.kubernetes.io/component"] == "strategy"
    container = sts["spec"]["template"]["spec"]["containers"][0]
    assert container["args"] == ["service", "strategy"]
    env = {e["name"]: e for e in container["env"]}
    assert env["REPLICA_INDEX"]["valueFrom"] == {
        "fieldRef": {"fieldPath": f"metadata.labels['{POD_INDEX_LABEL}']"}
    }
    assert env["REPLICA_COUNT"]["value"] == "3"
    # The same pod as every service: hardening, probes, config from the ConfigMap.
    other = deployment_like["spec"]["template"]["spec"]
    assert sts["spec"]["template"]["spec"]["securityContext"] == other["securityContext"]
    assert container["envFrom"] == other["containers"][0]["envFrom"]
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    service = child("Service", "demo-strategy")
    assert service["spec"]["clusterIP"] == "None"
    assert service["spec"]["selector"] == sts["spec"]["selector"]["matchLabels"]


def test_no_strategy_deployment_is_built_any_more() -> None:
    """A stack that ran strategy as a Deployment loses it to pruning: it is not among the children."""
    kinds = {(o["kind"], o["metadata"]["name"]) for o in build_children(body(), ACCESS)}
    assert ("Deployment", "demo-strategy") not in kinds and ("StatefulSet", "demo-strategy") in kinds


@pytest.mark.parametrize("index", [0, 1, 2])
def test_each_replica_gets_an_environment_the_strategy_service_accepts(
    monkeypatch: pytest.MonkeyPatch, index: int
) -> None:
    stack = Stack.from_body(
        body(
            services={"strategy": {"replicas": 3}},
            strategies=[{"name": "rsi", "params": {"period": 10, "input": "5m"}}, {"name": "bollinger"}],
        )
    )
    env = environment(stack)
    assert env["STRATEGIES"] == "rsi,bollinger" and json.loads(env["STRATEGY_PARAMS"]) == {
        "rsi": {"input": "5m", "period": 10}
    }
    for key, value in {**env, "REPLICA_INDEX": str(index), "REPLICA_COUNT": "3"}.items():
        monkeypatch.setenv(key, value)
    settings = Settings(_env_file=None)
    assert settings.strategies == ("rsi", "bollinger")
    assert settings.strategy_params == {"rsi": {"input": "5m", "period": 10}}
    assert settings.tick_shards == 8
    owned = owned_shards(settings.replica_index, settings.replica_count, settings.tick_shards)
    # The status looks for the heartbeat id the replica writes, with the shards it reads.
    assert replica_shards(stack)[replica_service_id(settings)] == owned


def test_the_replicas_own_every_shard_once() -> None:
    shards = replica_shards(Stack.from_body(body(tickShards=8, services={"strategy": {"replicas": 3}})))
    assert shards == {"strategy-0": [0, 3, 6], "strategy-1": [1, 4, 7], "strategy-2": [2, 5]}


@pytest.mark.parametrize(
    ("spec", "says"),
    [
        (
            {"tickShards": 2, "services": {"strategy": {"replicas": 3}}},
            "services.strategy.replicas cannot exceed tickShards",
        ),
        ({"strategies": [{"name": "macd"}]}, "unknown strategy 'macd'; available: bollinger"),
        (
            {"strategies": [{"name": "rsi", "params": {"length": 5}}]},
            "strategy 'rsi' has no parameter 'length'; its parameters: input, period",
        ),
        (
            {"strategies": [{"name": "rsi", "params": {"period": 1}}]},
            "strategy 'rsi' parameter period=1: Input should be greater than or equal to 2",
        ),
        (
            {"strategies": [{"name": "donchian_breakout", "params": {"input": "trades"}}]},
            "strategy 'donchian_breakout' parameter input='trades'",
        ),
        ({"strategies": [{"name": "rsi"}, {"name": "rsi"}]}, "STRATEGIES names rsi more than once"),
        ({"strategies": []}, "spec.strategies"),
    ],
)
def test_the_operator_refuses_strategies_the_registry_refuses(spec: dict[str, Any], says: str) -> None:
    with pytest.raises(InvalidSpec) as info:
        parse_spec(spec)
    assert says in str(info.value)


def test_the_crd_types_strategies_from_the_registry() -> None:
    schema = spec_schema()["properties"]["strategies"]
    assert schema["items"]["properties"]["name"]["enum"] == [
        "bollinger",
        "donchian_breakout",
        "rsi",
        "sma_crossover",
    ]
    assert schema["x-kubernetes-list-type"] == "map"  # a name twice is refused by the API server
    assert schema["default"] == [{"name": "sma_crossover", "params": {}}, {"name": "rsi", "params": {}}]
    params = schema["items"]["properties"]["params"]["properties"]
    assert params["period"]["type"] == "integer" and params["width"]["type"] == "number"
    assert (params["period"]["minimum"], params["period"]["maximum"]) == (2, 1000)  # rsi's and bollinger's
    assert params["width"]["exclusiveMinimum"] is True  # OpenAPI v3.0 spelling
    assert params["input"]["enum"] == ["1m", "5m", "15m", "1h", "provider_1m", "trades", "quotes"]
    assert "rsi: bars in Wilder's RSI" in params["period"]["description"]
    rsi = next(r for r in schema["items"]["x-kubernetes-validations"] if "'rsi'" in r["rule"])
    assert "has(self.params.fast)" in rsi["rule"] and "has(self.params.period)" not in rsi["rule"]
    assert "has no parameter" in rsi["messageExpression"]
    rules = spec_schema()["x-kubernetes-validations"]
    assert any(r["rule"] == "self.services.strategy.replicas <= self.tickShards" for r in rules)
    assert spec_schema()["properties"]["tickShards"]["x-kubernetes-validations"][0]["rule"] == (
        "self == oldSelf"
    )


def beat(sid: str, age: float | None = 1.0) -> Any:
    raw = None if age is None else f'{{"timestamp": {NOW - age}, "status": "running"}}'.encode()
    return health_from_raw(sid, raw, b"0", NOW)


def status_with(ages: dict[str, float | None]) -> dict[str, Any]:
    services = ("market_data", "strategy", "execution", "storage", "api", "dashboard")
    heartbeats = {sid: beat(sid) for sid in services if sid != "strategy"}
    heartbeats |= {hid: beat(hid, age) for hid, age in ages.items()}
    work = [Workload(c, f"s-{c}", 3 if c == "strategy" else 1, 3 if c == "strategy" else 1) for c in services]
    return compute_status(
        Observation(
            generation=1,
            reconciled_generation=1,
            service_ids=services,
            market_data_service="market_data",
            workloads=work,
            heartbeats=heartbeats,
            instances={"strategy": {"strategy-0": [0, 3], "strategy-1": [1, 4], "strategy-2": [2, 5]}},
        )
    )


def test_three_replicas_are_three_heartbeats_in_the_status() -> None:
    status = status_with({"strategy-0": 1.0, "strategy-1": 2.0, "strategy-2": 3.0})
    strategy = status["services"]["strategy"]
    assert status["phase"] == "Ready" and strategy["state"] == "healthy"
    assert strategy["instances"] == {
        "strategy-0": {"state": "healthy", "errorCount": 0, "heartbeatAge": 1, "shards": [0, 3]},
        "strategy-1": {"state": "healthy", "errorCount": 0, "heartbeatAge": 2, "shards": [1, 4]},
        "strategy-2": {"state": "healthy", "errorCount": 0, "heartbeatAge": 3, "shards": [2, 5]},
    }
    # Ages alone do not make a status write.
    older = status_with({"strategy-0": 9.0, "strategy-1": 8.0, "strategy-2": 7.0})
    assert older != status and _without_ages(older) == _without_ages(status)


def test_one_stuck_replica_shows_by_name() -> None:
    status = status_with({"strategy-0": 1.0, "strategy-1": 400.0, "strategy-2": None})
    strategy = status["services"]["strategy"]
    assert strategy["state"] == "dead"  # the worst replica's
    assert strategy["instances"]["strategy-1"]["state"] == "dead"
    assert strategy["instances"]["strategy-0"]["state"] == "healthy"
    degraded = next(c for c in status["conditions"] if c["type"] == "Degraded")
    assert degraded["reason"] == "ServiceUnhealthy"
    assert "strategy-1 dead (heartbeat 400s old)" in degraded["message"]
    assert "strategy-2 dead (no heartbeat)" in degraded["message"]
    assert "strategy-0" not in degraded["message"]


def test_a_changed_shard_count_is_refused_not_applied() -> None:
    stack = Stack.from_body(body(tickShards=16))
    # What the stack runs with: its status's record first, else its live ConfigMap.
    assert running_tick_shards({"tickShards": 8}, {"data": {"TICK_SHARDS": "4"}}) == 8
    assert running_tick_shards({}, {"data": {"TICK_SHARDS": "4"}}) == 4
    assert running_tick_shards(None, None) is None
    assert reshard_refusal(stack, None) is None and reshard_refusal(stack, 16) is None
    refusal = reshard_refusal(stack, 8)
    assert refusal is not None
    assert "spec.tickShards is 16 but the stack runs 8 tick shards" in refusal
    assert "set tickShards back to 8" in refusal
