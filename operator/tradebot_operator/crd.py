"""The TradingStack CustomResourceDefinition, built here and written to the chart.

This module is the one source of the schema: `python -m tradebot_operator crd` writes
charts/tradebot/crds/tradingstacks.yaml (a unit test keeps the two equal), and
`apply_defaults` fills a spec from the same defaults the API server applies, so the
pure builders see in unit tests exactly what they see in a cluster.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any, get_args

import yaml

from tradebot.common.models import SYMBOL_PATTERN
from tradebot.common.settings import SymbolMode
from tradebot.providers.registry import DATA_SOURCES as SOURCES
from tradebot_operator import GROUP, KIND, PLURAL, VERSION

DATA_SOURCES: tuple[str, ...] = tuple(SOURCES)
SYMBOL_MODES: tuple[str, ...] = get_args(SymbolMode)
# spec.services keys (camelCase) -> the service id each configures ("marketData": the active source's).
SERVICE_KEYS = {
    "marketData": "market_data",
    "strategy": "strategy",
    "execution": "execution",
    "storage": "storage",
    "api": "api",
    "dashboard": "dashboard",
}
# Services that must not run twice: two feeds would double the ticks, two brokers double the orders.
SINGLETONS = {"marketData", "execution"}

DEFAULT_IMAGES = {
    "tradebot": "ghcr.io/tradebot/tradebot:0.1.0",
    "redis": "redis:7.4-alpine",
    "timescaledb": "timescale/timescaledb:2.17.2-pg16",
}

QUANTITY_PATTERN = (
    r"^(\+|-)?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))"
    r"(([KMGTPE]i)|[numkMGTPE]|([eE](\+|-)?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))))?$"
)
Schema = dict[str, Any]


# --------------------------------------------------------------------------- schema helpers


def _obj(description: str, properties: Mapping[str, Schema], **extra: Any) -> Schema:
    return {"type": "object", "description": description, "properties": dict(properties), **extra}


def _str(description: str, **extra: Any) -> Schema:
    return {"type": "string", "description": description, **extra}


def _int(description: str, default: int, minimum: int, maximum: int) -> Schema:
    return {
        "type": "integer",
        "description": description,
        "default": default,
        "minimum": minimum,
        "maximum": maximum,
    }


def _positive(description: str, default: float) -> Schema:
    return {
        "type": "number",
        "description": description,
        "default": default,
        "minimum": 0,
        "exclusiveMinimum": True,
    }


def _quantity(description: str) -> Schema:
    return {
        "description": description,
        "anyOf": [{"type": "integer"}, {"type": "string"}],
        "pattern": QUANTITY_PATTERN,
        "x-kubernetes-int-or-string": True,
    }


def _resources(what: str, requests: Mapping[str, str], limits: Mapping[str, str]) -> Schema:
    def quantities(kind: str) -> Schema:
        return {
            "type": "object",
            "description": f"{kind} of {what} by resource name (cpu, memory).",
            "additionalProperties": _quantity("a Kubernetes quantity, e.g. 100m or 256Mi"),
        }

    return _obj(
        f"CPU and memory of {what} (a Kubernetes ResourceRequirements subset).",
        {"requests": quantities("Requests"), "limits": quantities("Limits")},
        default={"requests": dict(requests), "limits": dict(limits)},
    )


def _storage(what: str, size: str) -> Schema:
    return _obj(
        f"The PersistentVolumeClaim of {what}.",
        {
            "size": {**_quantity(f"Size of the volume of {what}."), "default": size},
            "storageClassName": _str(
                "StorageClass of the claim; empty uses the cluster's default class.", maxLength=253
            ),
        },
        default={},
    )


def _service(key: str, service_id: str) -> Schema:
    singleton = key in SINGLETONS
    replicas = _int(
        "Pods of this service; 0 stops it."
        + (" At most 1: a second copy would duplicate its output." if singleton else ""),
        default=1,
        minimum=0,
        maximum=1 if singleton else 20,
    )
    heavy = service_id in ("storage", "api")
    return _obj(
        f"The {service_id.replace('_', ' ')} service"
        + (" (the one of spec.dataSource)." if key == "marketData" else "."),
        {
            "replicas": replicas,
            "resources": _resources(
                f"each {service_id} pod",
                {"cpu": "100m" if heavy else "50m", "memory": "192Mi" if heavy else "128Mi"},
                {"memory": "512Mi" if heavy else "256Mi"},
            ),
        },
        default={},
    )


# --------------------------------------------------------------------------- the schema


def spec_schema() -> Schema:
    risk = _obj(
        "Risk limits of the paper execution service.",
        {
            "maxPositionPerSymbol": _positive("Largest position in one symbol, in shares.", 1000),
            "maxOrderNotional": _positive("Largest order value, in account currency.", 50000),
            "maxOpenPositions": _int("Most symbols held at once.", 20, 1, 10_000),
            "dailyLossLimit": _positive("Trading stops for the day after this loss.", 5000),
        },
        default={},
    )
    credentials = _obj(
        "Where the provider credentials are: never in the spec, always in a Secret.",
        {
            "secretRef": _obj(
                "A Secret in the stack's namespace with keys ALPACA_KEY and ALPACA_SECRET (alpaca) "
                "or POLYGON_API_KEY (polygon).",
                {"name": _str("Name of the Secret.", minLength=1, maxLength=253)},
                required=["name"],
            )
        },
    )
    images = _obj(
        "Container images.",
        {
            "tradebot": _str(
                "The TradeBot image (entrypoint `tradebot`).", default=DEFAULT_IMAGES["tradebot"]
            ),
            "redis": _str("The Redis image.", default=DEFAULT_IMAGES["redis"]),
            "timescaledb": _str("The TimescaleDB (PostgreSQL) image.", default=DEFAULT_IMAGES["timescaledb"]),
            "pullPolicy": _str(
                "Image pull policy of every container.",
                enum=["Always", "IfNotPresent", "Never"],
                default="IfNotPresent",
            ),
        },
        default={},
    )
    services = _obj(
        "Replicas and resources per service.",
        {key: _service(key, sid) for key, sid in SERVICE_KEYS.items()},
        default={},
    )

    def database(what: str, size: str, requests: Mapping[str, str], limits: Mapping[str, str]) -> Schema:
        return _obj(
            f"The {what} StatefulSet.",
            {"storage": _storage(what, size), "resources": _resources(f"the {what} pod", requests, limits)},
            default={},
        )

    return _obj(
        "What the original system read from .env: where market data comes from, which symbols, "
        "the limits, the credentials Secret, and how the services and stores run.",
        {
            "dataSource": _str(
                "Where market data comes from; selects the one market-data service.",
                enum=list(DATA_SOURCES),
                default="synthetic",
            ),
            "symbolMode": _str(
                "Which symbols to trade: a custom list (spec.symbols) or a universe by size.",
                enum=list(SYMBOL_MODES),
                default="custom",
            ),
            "symbols": {
                "type": "array",
                "description": "Ticker symbols for symbolMode custom, e.g. AAPL or BRK.B.",
                "maxItems": 20_000,
                "x-kubernetes-list-type": "set",
                "items": _str("A ticker symbol in upper case.", pattern=SYMBOL_PATTERN, maxLength=16),
            },
            "maxSymbols": _int("Cap on the symbols of a mode.", 500, 1, 20_000),
            "maxWebsocketSymbols": _int("Live subscriptions at a provider.", 30, 1, 1_000),
            "risk": risk,
            "credentials": credentials,
            "images": images,
            "services": services,
            "redis": database("redis", "1Gi", {"cpu": "50m", "memory": "64Mi"}, {"memory": "256Mi"}),
            "timescaledb": database(
                "timescaledb", "10Gi", {"cpu": "100m", "memory": "256Mi"}, {"memory": "1Gi"}
            ),
        },
        **{
            "x-kubernetes-validations": [
                {
                    "rule": "self.dataSource == 'synthetic' || (has(self.credentials) && "
                    "has(self.credentials.secretRef))",
                    "message": "dataSource alpaca and polygon need credentials.secretRef: a Secret with "
                    "the provider's keys (ALPACA_KEY and ALPACA_SECRET, or POLYGON_API_KEY)",
                    "fieldPath": ".credentials",
                    "reason": "FieldValueRequired",
                },
                {
                    "rule": "self.symbolMode != 'custom' || (has(self.symbols) && size(self.symbols) > 0)",
                    "message": "symbolMode custom needs symbols: list at least one ticker",
                    "fieldPath": ".symbols",
                    "reason": "FieldValueRequired",
                },
                {
                    "rule": "self.maxWebsocketSymbols <= self.maxSymbols",
                    "message": "maxWebsocketSymbols cannot exceed maxSymbols",
                    "fieldPath": ".maxWebsocketSymbols",
                },
            ]
        },
    )


def status_schema() -> Schema:
    condition = _obj(
        "A standard condition (Ready, Progressing or Degraded).",
        {
            "type": _str("Ready, Progressing or Degraded."),
            "status": _str("True, False or Unknown.", enum=["True", "False", "Unknown"]),
            "reason": _str("A CamelCase word for programs."),
            "message": _str("What is going on, for people."),
            "lastTransitionTime": _str("When status last changed.", format="date-time"),
            "observedGeneration": {"type": "integer", "description": "The generation it describes."},
        },
        required=["type", "status"],
    )
    service = _obj(
        "Health of one service: its pods and its heartbeat in Redis.",
        {
            "deployment": _str("Name of its Deployment."),
            "replicas": {"type": "integer", "description": "Pods wanted."},
            "readyReplicas": {"type": "integer", "description": "Pods ready."},
            "state": _str(
                "healthy, degraded, unhealthy, dead or error (from the heartbeat), or unknown when "
                "Redis cannot be read, or stopped at 0 replicas."
            ),
            "heartbeatAge": {"type": "integer", "description": "Seconds since its last heartbeat."},
            "errorCount": {"type": "integer", "description": "Its error counter in Redis."},
        },
    )
    return _obj(
        "What the operator observed.",
        {
            "observedGeneration": {"type": "integer", "description": "The spec generation last reconciled."},
            "phase": _str(
                "Progressing (applying or rolling out), Ready, or Degraded (see the Degraded condition).",
                enum=["Progressing", "Ready", "Degraded"],
            ),
            "readyServices": _str("Services whose pods are ready and heartbeat is healthy, e.g. 6/6."),
            "activeMarketData": _str("The market-data service id of the data source."),
            "conditions": {
                "type": "array",
                "description": "Ready, Progressing and Degraded.",
                "items": condition,
                "x-kubernetes-list-type": "map",
                "x-kubernetes-list-map-keys": ["type"],
            },
            "services": {
                "type": "object",
                "description": "Health by service id.",
                "additionalProperties": service,
            },
            "endpoints": _obj(
                "In-cluster URLs of the Services people use.",
                {"api": _str("The history API."), "dashboard": _str("The live dashboard.")},
            ),
        },
    )


def crd() -> dict[str, Any]:
    """The CustomResourceDefinition object."""
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"{PLURAL}.{GROUP}"},
        "spec": {
            "group": GROUP,
            "scope": "Namespaced",
            "names": {
                "plural": PLURAL,
                "singular": "tradingstack",
                "kind": KIND,
                "listKind": f"{KIND}List",
                "shortNames": ["tstack"],
                "categories": ["tradebot"],
            },
            "versions": [
                {
                    "name": VERSION,
                    "served": True,
                    "storage": True,
                    "subresources": {"status": {}},
                    "additionalPrinterColumns": [
                        {"name": "Source", "type": "string", "jsonPath": ".spec.dataSource"},
                        {"name": "Symbols", "type": "string", "jsonPath": ".spec.symbolMode"},
                        {"name": "Phase", "type": "string", "jsonPath": ".status.phase"},
                        {"name": "Ready", "type": "string", "jsonPath": ".status.readyServices"},
                        {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
                    ],
                    "schema": {
                        "openAPIV3Schema": _obj(
                            "One TradeBot: market data, strategy, paper execution, storage, API and "
                            "dashboard, with its Redis and TimescaleDB.",
                            {
                                "apiVersion": {"type": "string"},
                                "kind": {"type": "string"},
                                "metadata": {"type": "object"},
                                "spec": spec_schema(),
                                "status": status_schema(),
                            },
                            required=["spec"],
                        )
                    },
                }
            ],
        },
    }


def crd_yaml() -> str:
    header = "# Generated by `python -m tradebot_operator crd`; edit operator/tradebot_operator/crd.py.\n"
    return header + yaml.safe_dump(crd(), sort_keys=False, width=110)


# --------------------------------------------------------------------------- defaulting


def _default(schema: Schema, value: Any) -> Any:
    """Structural defaulting as the API server does it: fill absent fields, recurse into objects."""
    if isinstance(value, dict) and schema.get("type") == "object":
        out = dict(value)
        for key, sub in schema.get("properties", {}).items():
            if key not in out and "default" in sub:
                out[key] = copy.deepcopy(sub["default"])
            if key in out:
                out[key] = _default(sub, out[key])
        extra = schema.get("additionalProperties")
        if isinstance(extra, dict):
            for key in set(out) - set(schema.get("properties", {})):
                out[key] = _default(extra, out[key])
        return out
    return value


def apply_defaults(spec: Mapping[str, Any] | None) -> dict[str, Any]:
    """The spec as the API server stores it (unit tests and specs read from older objects)."""
    return _default(spec_schema(), dict(spec or {}))
