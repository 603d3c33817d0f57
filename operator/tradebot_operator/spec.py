"""The TradingStack spec as a typed model: what the builders take, and what the CRD schema is made from.

Each field carries its description, default and bounds once; a field that mirrors a
setting takes them from `tradebot.common.settings.Settings`, and the strategies and
their parameters come from `tradebot.strategy.registry`. Each cross-field rule is
one `Rule`: its CEL expression goes into the CRD (the API server refuses a bad stack
with the rule's message) and, unless it compares with the old object, its Python
twin runs when the operator reads a stack, so both refuse with the same words.
`crd.py` turns the model's JSON schema into a structural Kubernetes schema.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Annotated, Any, ClassVar, Literal

from annotated_types import Ge, Gt, Le, Lt, MaxLen, MinLen
from kubernetes.utils.quantity import parse_quantity
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    WithJsonSchema,
    model_validator,
)
from pydantic.alias_generators import to_camel
from pydantic_core.core_schema import CoreSchema

from tradebot.common import timescaledb
from tradebot.common.models import SYMBOL_PATTERN
from tradebot.common.settings import DEFAULT_SYMBOLS, Settings, SizingMode, SymbolMode
from tradebot.providers.registry import (
    DATA_SOURCES,
    DEFAULT_SOURCE,
    DEFAULT_VENUE,
    EXECUTION_VENUES,
    DataSourceName,
    ExecutionVenueName,
)
from tradebot.strategy.registry import STRATEGY_CLASSES, build_strategies, build_strategy, strategy_class

# A Kubernetes quantity without a sign (resources and sizes are never negative).
QUANTITY_PATTERN = (
    r"^(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))"
    r"(([KMGTPE]i)|[numkMGTPE]|([eE](\+|-)?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))))?$"
)
# An image reference: [registry[:port]/]path[:tag][@digest] (the distribution reference grammar).
IMAGE_PATTERN = (
    r"^([a-zA-Z0-9]([a-zA-Z0-9-]*[a-zA-Z0-9])?(\.[a-zA-Z0-9]([a-zA-Z0-9-]*[a-zA-Z0-9])?)*(:[0-9]+)?/)?"
    r"[a-z0-9]+(([._]|__|-+)[a-z0-9]+)*(/[a-z0-9]+(([._]|__|-+)[a-z0-9]+)*)*"
    r"(:[A-Za-z0-9_][A-Za-z0-9_.-]{0,127})?(@sha256:[a-f0-9]{64})?$"
)
DNS_SUBDOMAIN_PATTERN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"
CRON_PATTERN = r"^(@(yearly|annually|monthly|weekly|daily|midnight|hourly)|(\S+\s+){4}\S+)$"
RESOURCE_NAMES = ("cpu", "memory", "ephemeral-storage")
# Object names are `<stack>-timescaledb-0` and labels `<stack>-timescaledb-<hash>` (63 at most).
MAX_STACK_NAME = 40


# --------------------------------------------------------------------------- rules


@dataclass(frozen=True)
class Rule:
    """One validation rule: CEL for the API server, `check` for the operator.

    `check` is None for a transition rule, and for one whose Python side is a validator
    that says more (the strategy registry's refusals). `message_expression` is CEL
    building the message, e.g. to name the refused key (`message` is its fallback).
    """

    cel: str
    message: str
    field_path: str | None = None
    reason: str | None = None
    check: Callable[[Any], bool] | None = None
    message_expression: str | None = None

    def schema(self) -> dict[str, str]:
        out = {"rule": self.cel, "message": self.message}
        if self.message_expression:
            out["messageExpression"] = self.message_expression
        if self.field_path:
            out["fieldPath"] = self.field_path
        if self.reason:
            out["reason"] = self.reason
        return out


def cel(*rules: Rule) -> dict[str, Any]:
    """Field-level rules as `json_schema_extra` (only transition rules: fields have no Python twin)."""
    return {"x-kubernetes-validations": [r.schema() for r in rules]}


class SpecModel(BaseModel):
    """camelCase in the cluster, snake_case in Python; unknown fields are the API server's business."""

    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        extra="ignore",
        frozen=True,
        use_attribute_docstrings=False,
    )
    rules: ClassVar[tuple[Rule, ...]] = ()

    @model_validator(mode="after")
    def _check_rules(self) -> SpecModel:
        for rule in type(self).rules:
            if rule.check is not None and not rule.check(self):
                raise ValueError(rule.message)
        return self

    @classmethod
    def __get_pydantic_json_schema__(cls, core_schema: CoreSchema, handler: Any) -> dict[str, Any]:
        schema: dict[str, Any] = handler(core_schema)
        target = handler.resolve_ref_schema(schema)
        if cls.rules:
            target["x-kubernetes-validations"] = [r.schema() for r in cls.rules]
        return schema


# --------------------------------------------------------------------------- field types


def _quantity_text(value: object) -> object:
    return str(value) if isinstance(value, int) and not isinstance(value, bool) else value


def _parses_as_quantity(value: str) -> str:
    try:
        parse_quantity(value)
    except ValueError:
        raise ValueError(f"{value!r} is not a Kubernetes quantity (e.g. 100m, 256Mi, 10Gi)") from None
    return value


Quantity = Annotated[
    str,
    BeforeValidator(_quantity_text),
    Field(pattern=QUANTITY_PATTERN, max_length=32),
    AfterValidator(_parses_as_quantity),
    WithJsonSchema(
        {
            "description": "A Kubernetes quantity, e.g. 100m, 256Mi or 10Gi.",
            "anyOf": [{"type": "integer"}, {"type": "string"}],
            "x-kubernetes-int-or-string": True,
            "pattern": QUANTITY_PATTERN,
            "maxLength": 32,
        }
    ),
]
Image = Annotated[str, Field(pattern=IMAGE_PATTERN, min_length=1, max_length=512)]
DnsName = Annotated[str, Field(pattern=DNS_SUBDOMAIN_PATTERN, min_length=1, max_length=253)]
TickerSymbol = Annotated[
    str, Field(pattern=SYMBOL_PATTERN, max_length=16, description="A ticker in upper case.")
]


def quantity(value: str) -> Decimal:
    return Decimal(parse_quantity(value))


def like_setting(name: str, description: str | None = None, default: Any = None, **extra: Any) -> Any:
    """A field with the default (unless given) and bounds of setting `name` (one home for both)."""
    info = Settings.model_fields[name]
    bounds: dict[str, Any] = {}
    for item in info.metadata:
        for kind, key in ((Ge, "ge"), (Gt, "gt"), (Le, "le"), (Lt, "lt"), (MinLen, "min_length")):
            if isinstance(item, kind):
                bounds[key] = getattr(item, key)
        if isinstance(item, MaxLen):
            bounds["max_length"] = item.max_length
    value = info.default if default is None else default
    return Field(value, description=description or info.description, **bounds, **extra)


# --------------------------------------------------------------------------- parts


class Resources(SpecModel):
    """CPU and memory of a pod's container (a Kubernetes ResourceRequirements subset)."""

    requests: dict[str, Quantity] = Field(
        default_factory=dict, max_length=len(RESOURCE_NAMES), description="Requests by resource name."
    )
    limits: dict[str, Quantity] = Field(
        default_factory=dict, max_length=len(RESOURCE_NAMES), description="Limits by resource name."
    )

    rules = (
        Rule(
            cel="(!has(self.requests) || self.requests.all(k, k in "
            + str(list(RESOURCE_NAMES))
            + ")) && (!has(self.limits) || self.limits.all(k, k in "
            + str(list(RESOURCE_NAMES))
            + "))",
            message=f"resources are named {', '.join(RESOURCE_NAMES)}",
            check=lambda r: set(r.requests) | set(r.limits) <= set(RESOURCE_NAMES),
        ),
        Rule(
            cel="!has(self.requests) || !has(self.limits) || self.limits.all(k, !(k in self.requests) || "
            "!isQuantity(string(self.limits[k])) || !isQuantity(string(self.requests[k])) || "
            "quantity(string(self.limits[k])).compareTo(quantity(string(self.requests[k]))) >= 0)",
            message="a limit cannot be below its request (limits.cpu >= requests.cpu, "
            "limits.memory >= requests.memory)",
            check=lambda r: all(
                quantity(v) >= quantity(r.requests[k]) for k, v in r.limits.items() if k in r.requests
            ),
        ),
    )


def sized(cpu: str, memory: str, memory_limit: str) -> Any:
    defaults = {"requests": {"cpu": cpu, "memory": memory}, "limits": {"memory": memory_limit}}
    return Field(
        default_factory=lambda: Resources.model_validate(defaults),
        description="CPU and memory of each pod (requests and limits by resource name).",
    )


class ServiceConfig(SpecModel):
    """One service: how many pods, how big."""

    replicas: int = Field(1, ge=0, le=20, description="Pods of this service; 0 stops it.")
    resources: Resources = sized("50m", "128Mi", "256Mi")


class SingletonService(ServiceConfig):
    """A service that must not run twice: two feeds double the ticks, two brokers double the orders."""

    replicas: int = Field(
        1,
        ge=0,
        le=1,
        description="Pods of this service; 0 stops it. At most 1: a second copy would duplicate its output.",
    )


class HeavyService(ServiceConfig):
    """A service that holds database connections and answers people (storage, api)."""

    resources: Resources = sized("100m", "192Mi", "512Mi")


class Services(SpecModel):
    """Replicas and resources per service."""

    market_data: SingletonService = Field(
        default_factory=SingletonService, description="The market-data service of spec.dataSource."
    )
    strategy: ServiceConfig = Field(default_factory=ServiceConfig, description="The strategy service.")
    execution: SingletonService = Field(
        default_factory=SingletonService, description="The paper execution service."
    )
    storage: HeavyService = Field(default_factory=HeavyService, description="The storage service.")
    api: HeavyService = Field(default_factory=HeavyService, description="The history API.")
    dashboard: ServiceConfig = Field(default_factory=ServiceConfig, description="The live dashboard.")


class Risk(SpecModel):
    """Risk limits of the paper execution service."""

    max_position_per_symbol: float = like_setting(
        "max_position_per_symbol", "Largest position in one symbol, in shares."
    )
    max_order_notional: float = like_setting(
        "max_order_notional", "Largest order value, in account currency."
    )
    max_open_positions: int = like_setting("max_open_positions", "Most symbols held at once.", le=10_000)
    daily_loss_limit: float = like_setting("daily_loss_limit", "Trading stops for the day after this loss.")


class Trading(SpecModel):
    """How the execution service sizes entries and exits positions (pure code beside the risk limits)."""

    sizing: SizingMode = like_setting(
        "sizing", "How an entry is sized: quantity, notional, equity_pct or risk."
    )
    order_quantity: float = like_setting("order_quantity", "Shares per entry (sizing quantity).")
    order_notional: float = like_setting("order_notional", "Dollars per entry (sizing notional).")
    order_equity_pct: float = like_setting(
        "order_equity_pct", "Percent of equity per entry (sizing equity_pct)."
    )
    risk_per_trade_pct: float = like_setting(
        "risk_per_trade_pct", "Percent of equity lost if the stop is hit (sizing risk)."
    )
    stop_loss_pct: float = like_setting("stop_loss_pct", "Stop below the entry, percent; 0: none.")
    stop_loss_atr: float = like_setting(
        "stop_loss_atr", "Stop below the entry in the signal's ATRs (before stopLossPct); 0: off."
    )
    take_profit_pct: float = like_setting("take_profit_pct", "Take profit above the entry, percent; 0: none.")
    trailing_stop_pct: float = like_setting(
        "trailing_stop_pct", "Exit this percent below the high since entry; 0: none (must be 0 at Alpaca)."
    )
    min_signal_strength: float = like_setting("min_signal_strength", "Weaker buy signals are not traded.")
    cooldown_seconds: float = like_setting(
        "cooldown_seconds", "No new entry in a symbol this soon after a fill."
    )


class Execution(SpecModel):
    """Where the execution service trades."""

    venue: ExecutionVenueName = Field(
        DEFAULT_VENUE,
        description="simulated: the paper broker. alpaca: orders at Alpaca's paper-trading account "
        "(credentials.secretRef with ALPACA_KEY and ALPACA_SECRET, given to the execution pods only). "
        "A stack never trades live.",
    )


class SecretRef(SpecModel):
    """A Secret in the stack's namespace."""

    name: DnsName = Field(description="Name of the Secret.")


def _credential_keys() -> str:
    return "; ".join(
        f"{name}: {' and '.join(s.credentials)}" for name, s in DATA_SOURCES.items() if s.credentials
    )


class Credentials(SpecModel):
    """Where the provider credentials are: never in the spec, always in a Secret."""

    secret_ref: SecretRef = Field(description=f"A Secret with the data source's keys ({_credential_keys()}).")


class Images(SpecModel):
    """Container images."""

    tradebot: Image = Field(
        "ghcr.io/tradebot/tradebot:0.1.0", description="The TradeBot image (entrypoint `tradebot`)."
    )
    redis: Image = Field("redis:7.4-alpine", description="The Redis image.")
    timescaledb: Image = Field(
        timescaledb.IMAGE,
        description="The TimescaleDB image (PostgreSQL with the extension preloaded); the default is "
        "the TimescaleDB and PostgreSQL major the embedded default and the tests run.",
    )
    pull_policy: Literal["Always", "IfNotPresent", "Never"] = Field(
        "IfNotPresent", description="Image pull policy of every container."
    )


NO_SHRINK = Rule(
    cel="!isQuantity(string(self)) || !isQuantity(string(oldSelf)) || "
    "quantity(string(self)).compareTo(quantity(string(oldSelf))) >= 0",
    message="a volume cannot shrink: claims only grow (set a size at least the current one)",
)
SAME_CLASS = Rule(
    cel="(has(self.storageClassName) ? self.storageClassName : '') == "
    "(has(oldSelf.storageClassName) ? oldSelf.storageClassName : '')",
    message="storageClassName is fixed once the claim exists (move the data to a new stack to change it)",
    field_path=".storageClassName",
)


class Storage(SpecModel):
    """A PersistentVolumeClaim: grown in place when its StorageClass allows expansion."""

    size: Quantity = Field(
        "1Gi", description="Size of the volume; it can grow, never shrink.", json_schema_extra=cel(NO_SHRINK)
    )
    storage_class_name: DnsName | None = Field(
        None, description="StorageClass of the claim; empty uses the cluster's default class. Fixed once set."
    )
    rules = (SAME_CLASS,)


class DatabaseStorage(Storage):
    size: Quantity = Field(
        "10Gi", description="Size of the volume; it can grow, never shrink.", json_schema_extra=cel(NO_SHRINK)
    )


class RedisStore(SpecModel):
    """The Redis StatefulSet."""

    storage: Storage = Field(default_factory=Storage, description="Its data volume.")
    resources: Resources = sized("50m", "64Mi", "256Mi")


class TimescaleStore(SpecModel):
    """The TimescaleDB StatefulSet."""

    storage: DatabaseStorage = Field(default_factory=DatabaseStorage, description="Its data volume.")
    resources: Resources = sized("100m", "256Mi", "1Gi")


class Network(SpecModel):
    """Who may reach the stack's api and dashboard (Redis and TimescaleDB: only its own pods)."""

    app_namespaces: list[Annotated[DnsName, Field(description="A namespace's name.")]] = Field(
        default_factory=list,
        max_length=100,
        description="Namespaces besides the stack's whose pods may reach the api and dashboard, e.g. an "
        "ingress controller's.",
        json_schema_extra={"x-kubernetes-list-type": "set"},
    )
    open_apps: bool = Field(
        False,
        description="Let anything reach the api and dashboard (a LoadBalancer or NodePort in front); "
        "their token still guards them.",
    )


class StoragePolicy(SpecModel):
    """What happens to the data volumes."""

    reclaim_policy: Literal["Delete", "Retain"] = Field(
        "Delete",
        description="Delete: the claims of Redis and TimescaleDB go with the stack. Retain: they stay "
        "after the stack is deleted. Either way they outlive a StatefulSet deleted by hand.",
    )


class BackupStorage(DatabaseStorage):
    """The volume the backups are written to."""


class Backup(SpecModel):
    """Scheduled logical backups of TimescaleDB (`tradebot db backup`) to a volume of their own."""

    schedule: str = Field(
        "0 3 * * *", pattern=CRON_PATTERN, max_length=100, description="When, as a CronJob schedule (UTC)."
    )
    retention: int = Field(7, ge=1, le=1_000, description="How many backups to keep; older ones are deleted.")
    suspend: bool = Field(False, description="Pause the schedule (kubectl tradebot backup still works).")
    storage: BackupStorage = Field(default_factory=BackupStorage, description="The backup volume.")
    resources: Resources = sized("50m", "128Mi", "512Mi")


def _known_strategy(name: str) -> str:
    strategy_class(name)  # StrategyConfigError (a ValueError) names the known ones
    return name


StrategyName = Annotated[
    str,
    AfterValidator(_known_strategy),
    WithJsonSchema(
        {
            "type": "string",
            "description": "A strategy of `tradebot strategies list`.",
            "enum": sorted(STRATEGY_CLASSES),
        }
    ),
]
MAX_PARAMS = 32


BOUNDS = ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum")


def parameter_types() -> dict[str, dict[str, Any]]:
    """Every parameter of every strategy, typed (a name means one type in all strategies that have it),
    with its bounds where every strategy that has it agrees on them.

    The CRD types `params` with these, so the API server refuses a value of the wrong type or out of
    bounds and, with strict field validation (kubectl's default), a name no strategy has; rules across
    parameters (fast below slow) are the registry's, checked by the operator.
    """
    found: dict[str, dict[str, Any]] = {}
    users: dict[str, list[str]] = {}
    bounds: dict[str, list[dict[str, Any]]] = {}
    for strategy in sorted(STRATEGY_CLASSES):
        for name, prop in strategy_class(strategy).Params.model_json_schema()["properties"].items():
            typed = {k: prop[k] for k in ("type", "enum") if k in prop}
            if "type" not in typed or found.setdefault(name, typed) != typed:
                raise TypeError(f"parameter {name!r} of {strategy!r}: one type per name, got {prop}")
            users.setdefault(name, []).append(f"{strategy}: {prop.get('description', name)}")
            bounds.setdefault(name, []).append({k: prop[k] for k in BOUNDS if k in prop})
    return {
        name: {
            **typed,
            "description": "; ".join(users[name]) + ".",
            **(bounds[name][0] if all(b == bounds[name][0] for b in bounds[name]) else {}),
        }
        for name, typed in found.items()
    }


def unknown_parameter_rule(name: str, field: str = "params", strategy: str = "name") -> Rule | None:
    """CEL naming a parameter of another strategy given to strategy `name` (the registry says the same).

    `field` is the object keyed by parameter name, `strategy` the sibling field naming the strategy.
    """
    known = list(strategy_class(name).Params.model_fields)
    foreign = [p for p in parameter_types() if p not in known]
    if not foreign:
        return None
    given = " || ".join(f"has(self.{field}.{p})" for p in foreign)
    first = (
        "[" + ", ".join(f"has(self.{field}.{p}) ? '{p}' : ''" for p in foreign) + "].filter(p, p != '')[0]"
    )
    listed = ", ".join(known)
    return Rule(
        cel=f"self.{strategy} != '{name}' || !has(self.{field}) || !({given})",
        message=f"strategy {name!r} was given a parameter it does not have; its parameters: {listed}",
        message_expression=(
            f"\"strategy '{name}' has no parameter '\" + {first} + \"'; its parameters: {listed}\""
        ),
        field_path=f".{field}",
    )


def unknown_parameter_rules(field: str = "params", strategy: str = "name") -> tuple[Rule, ...]:
    rules = (unknown_parameter_rule(name, field, strategy) for name in sorted(STRATEGY_CLASSES))
    return tuple(rule for rule in rules if rule is not None)


PARAMS_DESCRIPTION = (
    "Parameters by name (`tradebot strategies show NAME`: types, defaults, bounds); absent ones take "
    "their defaults."
)
StrategyParams = Annotated[
    dict[str, Any],
    WithJsonSchema({"type": "object", "description": PARAMS_DESCRIPTION, "properties": parameter_types()}),
]


class StrategyChoice(SpecModel):
    """One strategy the stack runs, with its parameters (STRATEGIES and STRATEGY_PARAMS)."""

    name: StrategyName
    params: StrategyParams = Field(default_factory=dict, max_length=MAX_PARAMS)

    rules = unknown_parameter_rules()

    @model_validator(mode="after")
    def _valid_params(self) -> StrategyChoice:
        build_strategy(self.name, self.params)  # the registry's refusal names the parameter and bound
        return self


def _default_strategies() -> list[StrategyChoice]:
    return [StrategyChoice(name=name) for name in Settings.model_fields["strategies"].default]


def _distinct_strategies(choices: list[StrategyChoice]) -> list[StrategyChoice]:
    build_strategies([c.name for c in choices], {})  # a name twice is refused, naming it
    return choices


def _needs_credentials(spec: StackSpec) -> bool:
    return not DATA_SOURCES[spec.data_source].credentials or spec.credentials is not None


def _venue_needs_credentials(spec: StackSpec) -> bool:
    return not EXECUTION_VENUES[spec.execution.venue].credentials or spec.credentials is not None


# A stack on Kubernetes is made to scale: more shards than the one of `make run` (TICK_SHARDS=1).
DEFAULT_TICK_SHARDS = 8
FREE_SOURCES = [name for name, source in DATA_SOURCES.items() if not source.credentials]
FREE_VENUES = [name for name, venue in EXECUTION_VENUES.items() if not venue.credentials]


class StackSpec(SpecModel):
    """What the original system read from .env: where market data comes from, which symbols, the limits,
    the credentials Secret, and how the services and stores run. `spec: {}` is a working stack."""

    data_source: DataSourceName = Field(
        DEFAULT_SOURCE, description="Where market data comes from; selects the one market-data service."
    )
    symbol_mode: SymbolMode = Field(
        Settings.model_fields["symbol_mode"].default,
        description="Which symbols to trade: a custom list (spec.symbols) or a universe by size.",
    )
    symbols: list[TickerSymbol] = Field(
        default_factory=lambda: list(DEFAULT_SYMBOLS),
        max_length=20_000,
        description="Ticker symbols for symbolMode custom, e.g. AAPL or BRK.B.",
        json_schema_extra={"x-kubernetes-list-type": "set"},
    )
    max_symbols: int = like_setting("max_symbols", "Cap on the symbols of a mode.")
    max_websocket_symbols: int = like_setting("max_websocket_symbols", "Live subscriptions at a provider.")
    tick_shards: int = like_setting(
        "tick_shards",
        "Tick streams split by symbol (ticks:<n>); part of the stack's identity, fixed at creation. "
        "Strategy replicas share them out (replica k of R reads the shards n with n mod R = k), so "
        "they bound services.strategy.replicas; the default lets a stack grow to 8 replicas.",
        default=DEFAULT_TICK_SHARDS,
        json_schema_extra=cel(
            Rule(cel="self == oldSelf", message="tickShards is fixed at creation: re-sharding is a migration")
        ),
    )
    strategies: Annotated[list[StrategyChoice], AfterValidator(_distinct_strategies)] = Field(
        default_factory=_default_strategies,
        min_length=1,
        max_length=len(STRATEGY_CLASSES),
        description="The strategies to run and their parameters (STRATEGIES, STRATEGY_PARAMS).",
        json_schema_extra={"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["name"]},
    )
    risk: Risk = Field(default_factory=Risk, description="Risk limits of the paper execution service.")
    trading: Trading = Field(
        default_factory=Trading, description="Sizing and exits of the execution service."
    )
    execution: Execution = Field(default_factory=Execution, description="Where the execution service trades.")
    credentials: Credentials | None = Field(
        None, description="Where the provider credentials are: never in the spec, always in a Secret."
    )
    images: Images = Field(default_factory=Images, description="Container images.")
    services: Services = Field(default_factory=Services, description="Replicas and resources per service.")
    redis: RedisStore = Field(default_factory=RedisStore, description="The Redis StatefulSet.")
    timescaledb: TimescaleStore = Field(
        default_factory=TimescaleStore, description="The TimescaleDB StatefulSet."
    )
    storage: StoragePolicy = Field(
        default_factory=StoragePolicy, description="What happens to the data volumes."
    )
    backup: Backup | None = Field(
        None, description="Scheduled backups of TimescaleDB; absent: none (`backup: {}` takes the defaults)."
    )
    network: Network = Field(
        default_factory=Network, description="Who may reach the api and dashboard (NetworkPolicies)."
    )

    rules = (
        Rule(
            cel=f"self.dataSource in {FREE_SOURCES} || has(self.credentials)",
            message=f"dataSource alpaca and polygon need credentials.secretRef: a Secret with the provider's "
            f"keys ({_credential_keys()})",
            field_path=".credentials",
            reason="FieldValueRequired",
            check=_needs_credentials,
        ),
        Rule(
            cel="!has(self.execution) || !has(self.execution.venue) || "
            f"self.execution.venue in {FREE_VENUES} || has(self.credentials)",
            message="execution.venue alpaca needs credentials.secretRef: a Secret with ALPACA_KEY and "
            "ALPACA_SECRET",
            field_path=".credentials",
            reason="FieldValueRequired",
            check=_venue_needs_credentials,
        ),
        Rule(
            cel="self.symbolMode != 'custom' || (has(self.symbols) && size(self.symbols) > 0)",
            message="symbolMode custom needs symbols: list at least one ticker, or leave symbols out for "
            f"the default list ({','.join(DEFAULT_SYMBOLS)})",
            field_path=".symbols",
            reason="FieldValueRequired",
            check=lambda s: s.symbol_mode != "custom" or bool(s.symbols),
        ),
        Rule(
            cel="self.services.strategy.replicas <= self.tickShards",
            message="services.strategy.replicas cannot exceed tickShards: each replica owns whole tick "
            "shards (a replica without one would idle)",
            field_path=".services.strategy.replicas",
            check=lambda s: s.services.strategy.replicas <= s.tick_shards,
        ),
        Rule(
            cel="self.maxWebsocketSymbols <= self.maxSymbols",
            message="maxWebsocketSymbols cannot exceed maxSymbols",
            field_path=".maxWebsocketSymbols",
            check=lambda s: s.max_websocket_symbols <= s.max_symbols,
        ),
    )


NAME_RULE = Rule(
    cel=f"size(self.metadata.name) <= {MAX_STACK_NAME}",
    message=f"a TradingStack name has at most {MAX_STACK_NAME} characters (children add up to 23)",
)


class InvalidSpec(ValueError):
    """A stored spec the model refuses (e.g. written before a rule existed); the message says why."""


def parse_spec(spec: Mapping[str, Any] | None) -> StackSpec:
    try:
        return StackSpec.model_validate(dict(spec or {}))
    except ValidationError as error:
        raise InvalidSpec(describe(error)) from None


def describe(error: ValidationError) -> str:
    """One line per problem, with the spec path in the cluster's spelling (camelCase)."""
    lines = []
    for problem in error.errors():
        path = ".".join(str(p) for p in problem["loc"])
        message = problem["msg"].removeprefix("Value error, ")
        lines.append(f"spec.{path}: {message}" if path else f"spec: {message}")
    return "; ".join(lines)
