"""The CRD: the chart's file is the generated one, and the schema teaches and defaults."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from tradebot_operator.apply import CHILD_KINDS, NEVER_PRUNED
from tradebot_operator.backtest.crd import backtest_crd_yaml
from tradebot_operator.crd import crd, crd_yaml, spec_schema
from tradebot_operator.spec import InvalidSpec, StackSpec, parse_spec


def apply_defaults(spec: dict[str, Any]) -> dict[str, Any]:
    """The spec as the operator reads it, back in the cluster's spelling."""
    return parse_spec(spec).model_dump(by_alias=True, exclude_none=True)


REPO = Path(__file__).resolve().parents[2]


def test_the_chart_carries_the_generated_crds() -> None:
    on_disk = (REPO / "charts" / "tradebot" / "crds" / "tradingstacks.yaml").read_text()
    assert on_disk == crd_yaml(), (
        "regenerate: python -m tradebot_operator crd > charts/tradebot/crds/tradingstacks.yaml"
    )
    backtests = (REPO / "charts" / "tradebot" / "crds" / "backtests.yaml").read_text()
    assert backtests == backtest_crd_yaml(), "regenerate: make crd"


def walk(schema: dict[str, Any], path: str = "spec"):
    yield path, schema
    for key, sub in (schema.get("properties") or {}).items():
        yield from walk(sub, f"{path}.{key}")
    if isinstance(schema.get("additionalProperties"), dict):
        yield from walk(schema["additionalProperties"], f"{path}.*")
    if isinstance(schema.get("items"), dict):
        yield from walk(schema["items"], f"{path}[]")


def test_every_spec_field_is_described_for_kubectl_explain() -> None:
    undescribed = [path for path, schema in walk(spec_schema()) if not schema.get("description")]
    assert not undescribed


def test_names_columns_and_subresources() -> None:
    spec = crd()["spec"]
    assert spec["names"]["shortNames"] == ["tstack"] and spec["scope"] == "Namespaced"
    version = spec["versions"][0]
    assert version["subresources"] == {"status": {}}
    columns = [c["name"] for c in version["additionalPrinterColumns"]]
    assert columns == ["Source", "Symbols", "Phase", "Ready", "Age"]
    rules = spec_schema()["x-kubernetes-validations"]
    assert any("credentials" in r["rule"] for r in rules) and any("symbols" in r["rule"] for r in rules)


def test_defaults_fill_a_minimal_spec_like_the_api_server() -> None:
    assert apply_defaults({})["symbols"] == ["AAPL", "MSFT", "AMZN", "GOOG", "TSLA"]
    spec = apply_defaults({"symbols": ["AAPL"]})
    assert spec["dataSource"] == "synthetic" and spec["symbolMode"] == "custom"
    assert (spec["maxSymbols"], spec["maxWebsocketSymbols"]) == (500, 30)
    assert spec["risk"] == {
        "maxPositionPerSymbol": 1000,
        "maxOrderNotional": 50000,
        "maxOpenPositions": 20,
        "dailyLossLimit": 5000,
    }
    assert spec["services"]["strategy"]["replicas"] == 1
    assert spec["services"]["api"]["resources"]["requests"]["memory"] == "192Mi"
    assert spec["redis"]["storage"]["size"] == "1Gi" and spec["timescaledb"]["storage"]["size"] == "10Gi"
    assert spec["images"]["pullPolicy"] == "IfNotPresent"
    # What is given stays; only what is absent is defaulted.
    given = apply_defaults(
        {"symbols": ["AAPL"], "risk": {"dailyLossLimit": 10}, "services": {"api": {"replicas": 3}}}
    )
    assert given["risk"]["dailyLossLimit"] == 10 and given["risk"]["maxOpenPositions"] == 20
    assert given["services"]["api"]["replicas"] == 3 and "resources" in given["services"]["api"]


def test_schema_defaults_are_the_models(tmp_path: Any) -> None:
    """What the API server fills in from the CRD is what the operator's model fills in."""

    def defaulted(schema: dict[str, Any], value: Any) -> Any:
        if isinstance(value, dict) and schema.get("type") == "object":
            out = dict(value)
            for key, sub in (schema.get("properties") or {}).items():
                if key not in out and "default" in sub:
                    out[key] = sub["default"]
                if key in out:
                    out[key] = defaulted(sub, out[key])
            return out
        return value

    for spec in ({}, {"backup": {}}, {"services": {"api": {"replicas": 2}}, "redis": {"storage": {}}}):
        by_server = defaulted(spec_schema(), spec)
        assert StackSpec.model_validate(by_server) == StackSpec.model_validate(spec)
        assert apply_defaults(by_server) == apply_defaults(spec)


@pytest.mark.parametrize(
    ("spec", "says"),
    [
        ({"dataSource": "alpaca"}, "dataSource alpaca and polygon need credentials.secretRef"),
        ({"symbols": []}, "symbolMode custom needs symbols"),
        ({"maxSymbols": 10, "maxWebsocketSymbols": 20}, "maxWebsocketSymbols cannot exceed maxSymbols"),
        (
            {"services": {"api": {"resources": {"requests": {"cpu": "2"}, "limits": {"cpu": "1"}}}}},
            "below its request",
        ),
        ({"services": {"api": {"resources": {"requests": {"gpu": "1"}}}}}, "resources are named"),
        ({"redis": {"storage": {"size": "-1Gi"}}}, "spec.redis.storage.size"),
        ({"images": {"tradebot": "Not An Image!"}}, "spec.images.tradebot"),
        ({"credentials": {"secretRef": {"name": "Bad_Name"}}}, "spec.credentials.secretRef.name"),
        ({"trading": {"sizing": "everything"}}, "spec.trading.sizing"),
        ({"trading": {"stopLossPct": 100}}, "spec.trading.stopLossPct"),
        ({"trading": {"minSignalStrength": 1.5}}, "spec.trading.minSignalStrength"),
    ],
)
def test_the_model_refuses_what_the_crd_refuses(spec: dict[str, Any], says: str) -> None:
    with pytest.raises(InvalidSpec, match=None) as info:
        parse_spec(spec)
    assert says in str(info.value)


def test_the_example_stack_is_valid_against_the_schema_enums() -> None:
    stack = yaml.safe_load((REPO / "k8s" / "stack.yaml").read_text())
    assert stack["kind"] == "TradingStack"
    spec = apply_defaults(stack["spec"])
    props = spec_schema()["properties"]
    assert spec["dataSource"] in props["dataSource"]["enum"]
    assert spec["symbolMode"] in props["symbolMode"]["enum"]


def test_the_rbac_rules_grant_what_the_operator_uses_and_no_more() -> None:
    rules = yaml.safe_load((REPO / "charts" / "tradebot" / "files" / "operator-rbac-rules.yaml").read_text())
    granted = {
        (group, res): set(r["verbs"]) for r in rules for group in r["apiGroups"] for res in r["resources"]
    }
    for kind, (api_version, plural) in CHILD_KINDS.items():
        group = api_version.rpartition("/")[0]
        verbs = {"get", "list", "watch", "create", "patch", "delete"} - (
            {"delete"} if kind in NEVER_PRUNED else set()
        )
        assert granted[(group, plural)] == verbs, plural
    assert granted[("batch", "jobs")] == {"get", "list", "watch", "create", "patch"}
    assert granted[("tradebot.dev", "backtests")] == {"get", "list", "watch"}
    assert granted[("tradebot.dev", "backtests/status")] == {"patch"}
    assert granted[("tradebot.dev", "tradingstacks")] == {"get", "list", "watch", "patch"}
    assert granted[("tradebot.dev", "tradingstacks/status")] == {"patch"}
    assert granted[("", "events")] == {"create"}
    assert all("*" not in verbs for verbs in granted.values())
    assert ("", "pods") not in granted and ("", "namespaces") not in granted


def test_the_leader_rules_grant_one_lease_kind() -> None:
    rules = yaml.safe_load(
        (REPO / "charts" / "tradebot" / "files" / "operator-leader-rules.yaml").read_text()
    )
    assert rules == [
        {"apiGroups": ["coordination.k8s.io"], "resources": ["leases"], "verbs": ["get", "create", "update"]}
    ]
