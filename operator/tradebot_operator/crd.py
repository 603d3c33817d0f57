"""The TradingStack CustomResourceDefinition, generated from the typed spec and written to the chart.

`spec.StackSpec` is the one source of the spec's schema: its pydantic JSON schema becomes
a structural Kubernetes schema here (references inlined, `default` for every field that
has one, OpenAPI v3.0 bounds, CEL rules kept). `python -m tradebot_operator crd` writes
charts/tradebot/crds/tradingstacks.yaml, and a unit test keeps the two equal.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import yaml
from pydantic import BaseModel
from pydantic.json_schema import GenerateJsonSchema, NoDefault
from pydantic_core import core_schema as cs

from tradebot.providers.registry import DATA_SOURCES
from tradebot_operator import GROUP, KIND, PLURAL, VERSION
from tradebot_operator.spec import NAME_RULE, SpecModel, StackSpec

Schema = dict[str, Any]
# JSON-schema keywords with no place in a structural schema (or none that `kubectl explain` shows).
DROPPED = {"title", "$defs", "additionalProperties"}


class KubernetesSchema(GenerateJsonSchema):
    """Defaults from factories too; a model default is `{}` when its own defaults make it."""

    def get_default_value(self, schema: cs.WithDefaultSchema) -> Any:
        if "default_factory" not in schema:
            return super().get_default_value(schema)
        if schema.get("default_factory_takes_data"):
            return NoDefault
        value = schema["default_factory"]()  # type: ignore[call-arg]
        if isinstance(value, BaseModel):
            dumped = value.model_dump(by_alias=True, exclude_none=True, mode="json")
            plain = type(value)().model_dump(by_alias=True, exclude_none=True, mode="json")
            return {} if dumped == plain else dumped
        return value


def _structural(node: Any, defs: Mapping[str, Schema]) -> Any:
    """Inline $refs, drop null branches and titles, OpenAPI v3.0 exclusive bounds."""
    if isinstance(node, list):
        return [_structural(item, defs) for item in node]
    if not isinstance(node, dict):
        return node
    if "$ref" in node:
        target = defs[node["$ref"].rsplit("/", 1)[-1]]
        merged = {**target, **{k: v for k, v in node.items() if k != "$ref"}}
        rules = [*target.get("x-kubernetes-validations", []), *node.get("x-kubernetes-validations", [])]
        if rules:
            merged["x-kubernetes-validations"] = rules
        return _structural(merged, defs)
    options = node.get("anyOf")
    if options and any(o == {"type": "null"} for o in options):
        rest = [o for o in options if o != {"type": "null"}]
        inner = {k: v for k, v in node.items() if k != "anyOf"}
        if node.get("default", ...) is None:
            inner.pop("default")
        return _structural({**rest[0], **inner} if len(rest) == 1 else {**inner, "anyOf": rest}, defs)
    out: Schema = {}
    for key, value in node.items():
        if key in DROPPED and not (key == "additionalProperties" and isinstance(value, dict)):
            continue
        if key in ("exclusiveMinimum", "exclusiveMaximum") and not isinstance(value, bool):
            out["minimum" if key == "exclusiveMinimum" else "maximum"] = value
            out[key] = True
        elif key == "properties":
            out[key] = {name: _structural(sub, defs) for name, sub in value.items()}
        else:
            out[key] = _structural(value, defs)
    if "const" in out:
        out["enum"] = [out.pop("const")]
    if isinstance(out.get("description"), str):
        out["description"] = " ".join(out["description"].split())
    first = [k for k in ("type", "description") if k in out]
    return {**{k: out[k] for k in first}, **{k: v for k, v in out.items() if k not in first}}


def model_schema(model: type[SpecModel]) -> Schema:
    raw = model.model_json_schema(by_alias=True, mode="validation", schema_generator=KubernetesSchema)
    schema: Schema = _structural(raw, raw.get("$defs", {}))
    return schema


def spec_schema() -> Schema:
    return model_schema(StackSpec)


def _obj(description: str, properties: Mapping[str, Schema], **extra: Any) -> Schema:
    return {"type": "object", "description": description, "properties": dict(properties), **extra}


def _str(description: str, **extra: Any) -> Schema:
    return {"type": "string", "description": description, **extra}


def _int(description: str) -> Schema:
    return {"type": "integer", "description": description}


def condition_schema(types: str) -> Schema:
    """A standard condition; `types` names the ones there are, e.g. "Ready, Progressing or Degraded"."""
    return _obj(
        f"A standard condition ({types}).",
        {
            "type": _str(f"{types}."),
            "status": _str("True, False or Unknown.", enum=["True", "False", "Unknown"]),
            "reason": _str("A CamelCase word for programs."),
            "message": _str("What is going on, for people."),
            "lastTransitionTime": _str("When status last changed.", format="date-time"),
            "observedGeneration": _int("The generation it describes."),
        },
        required=["type", "status"],
    )


def status_schema() -> Schema:
    condition = condition_schema("Ready, Progressing or Degraded")
    heartbeat = {
        "state": _str(
            "healthy, degraded, unhealthy, dead or error (from the heartbeat), or unknown when "
            "Redis cannot be read, or stopped at 0 replicas."
        ),
        "heartbeatAge": _int("Seconds since its last heartbeat."),
        "errorCount": _int("Its error counter in Redis."),
    }
    instance = _obj(
        "One replica: its own heartbeat and the tick shards it owns.",
        {**heartbeat, "shards": {"type": "array", "description": "Its tick shards.", "items": _int("One.")}},
    )
    service = _obj(
        "Health of one service: its pods and its heartbeat in Redis (a replicated one: its worst replica's).",
        {
            "deployment": _str("Name of its Deployment (the strategy service: its StatefulSet)."),
            "replicas": _int("Pods wanted."),
            "readyReplicas": _int("Pods ready."),
            **heartbeat,
            "instances": {
                "type": "object",
                "description": "The strategy service's replicas by heartbeat id (strategy-<k>).",
                "additionalProperties": instance,
            },
        },
    )
    return _obj(
        "What the operator observed.",
        {
            "observedGeneration": _int("The spec generation last reconciled."),
            "phase": _str(
                "Progressing (applying or rolling out), Ready, or Degraded (see the Degraded condition).",
                enum=["Progressing", "Ready", "Degraded"],
            ),
            "readyServices": _str("Services whose pods are ready and heartbeat is healthy, e.g. 6/6."),
            "activeMarketData": _str("The market-data service id of the data source."),
            "tickShards": _int(
                "The tick shards the stack runs with, recorded when first reconciled: a spec that "
                "differs is not applied (Degraded, TickShardsChanged)."
            ),
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
            "volumes": {
                "type": "object",
                "description": "The data volume of each store as first seen: a claim replaced since is "
                "reported (Degraded, DataVolumeReplaced), never silently used.",
                "additionalProperties": _obj(
                    "One store's claim.",
                    {
                        "claim": _str("Name of the PersistentVolumeClaim."),
                        "uid": _str("Its uid: a new claim has a new one."),
                        "volumeName": _str("The PersistentVolume it is bound to."),
                        "capacity": _str("Its size as provisioned."),
                    },
                ),
            },
            "backup": _obj(
                "Scheduled backups (spec.backup).",
                {
                    "schedule": _str("The CronJob schedule."),
                    "lastScheduleTime": _str("When a backup last started.", format="date-time"),
                    "lastSuccessfulTime": _str("When a backup last succeeded.", format="date-time"),
                    "lastJob": _str("The newest backup Job."),
                    "lastResult": _str("Running, Succeeded or Failed: how the newest backup Job went."),
                    "message": _str("Why the newest backup failed, if it did."),
                },
            ),
        },
    )


def custom_resource_definition(
    kind: str,
    plural: str,
    short_name: str,
    description: str,
    spec: Schema,
    status: Schema,
    columns: list[dict[str, Any]],
    validations: list[dict[str, str]] | None = None,
) -> dict[str, Any]:
    """A namespaced kind of the group with a status subresource (the TradingStack's, the Backtest's)."""
    root = _obj(
        description,
        {
            "apiVersion": {"type": "string"},
            "kind": {"type": "string"},
            "metadata": {"type": "object"},
            "spec": spec,
            "status": status,
        },
        required=["spec"],
        **({"x-kubernetes-validations": validations} if validations else {}),
    )
    age = {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"}
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"{plural}.{GROUP}"},
        "spec": {
            "group": GROUP,
            "scope": "Namespaced",
            "names": {
                "plural": plural,
                "singular": kind.lower(),
                "kind": kind,
                "listKind": f"{kind}List",
                "shortNames": [short_name],
                "categories": ["tradebot"],
            },
            "versions": [
                {
                    "name": VERSION,
                    "served": True,
                    "storage": True,
                    "subresources": {"status": {}},
                    "additionalPrinterColumns": [*columns, age],
                    "schema": {"openAPIV3Schema": root},
                }
            ],
        },
    }


def crd() -> dict[str, Any]:
    """The TradingStack CustomResourceDefinition object."""
    return custom_resource_definition(
        KIND,
        PLURAL,
        "tstack",
        "One TradeBot: market data, strategy, paper execution, storage, API and dashboard, with its "
        "Redis and TimescaleDB.",
        spec_schema(),
        status_schema(),
        [
            {"name": "Source", "type": "string", "jsonPath": ".spec.dataSource"},
            {"name": "Symbols", "type": "string", "jsonPath": ".spec.symbolMode"},
            {"name": "Phase", "type": "string", "jsonPath": ".status.phase"},
            {"name": "Ready", "type": "string", "jsonPath": ".status.readyServices"},
        ],
        [NAME_RULE.schema()],
    )


def data_sources_yaml() -> str:
    """The chart's data sources and their credential keys (charts/tradebot/files/data-sources.yaml)."""
    header = (
        "# Generated from tradebot.providers.registry by `python -m tradebot_operator data-sources`\n"
        "# (make crd); the chart's checks of stack.credentials read it.\n"
    )
    sources = {
        name: {"serviceId": source.service_id, "credentials": list(source.credentials)}
        for name, source in DATA_SOURCES.items()
    }
    return header + yaml.safe_dump(sources, sort_keys=False)


def crd_yaml() -> str:
    header = "# Generated by `python -m tradebot_operator crd`; edit operator/tradebot_operator/spec.py.\n"
    return header + yaml.safe_dump(crd(), sort_keys=False, width=110)
