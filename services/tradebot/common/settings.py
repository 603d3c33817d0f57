"""Configuration from environment variables and `.env`, validated once at start.

The variable names and defaults are those of the original system, so existing
`.env` files keep working. A bad value raises `SettingsError` naming the
variable and what it accepts; services print it and exit instead of running
half-configured.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any, Literal

import orjson
from pydantic import Field, ValidationError, ValidationInfo, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from tradebot.providers.registry import DEFAULT_SOURCE, DataSourceName, data_source

SizingMode = Literal["quantity", "notional", "equity_pct", "risk"]
SymbolMode = Literal["custom", "popular", "large", "mid", "small", "all"]
LogLevel = Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"]

DEFAULT_SYMBOLS = ("AAPL", "MSFT", "AMZN", "GOOG", "TSLA")


@dataclass(frozen=True)
class ReadBy:
    """Field metadata: the services that read a setting (`Annotated[int, EXECUTION]`).

    The one declaration of each service's environment: the operator sets a variable only
    for the services that read it and rolls exactly their pods when it changes.
    `NO_SERVICE` marks settings only commands read (backfill, `symbols fetch`).
    """

    services: frozenset[str] = frozenset()

    def __or__(self, other: ReadBy) -> ReadBy:
        return ReadBy(self.services | other.services)


def _read_by(*services: str) -> ReadBy:
    return ReadBy(frozenset(services))


NO_SERVICE = _read_by()
FEEDS = _read_by("market_data", "alpaca_market_data", "polygon_market_data")
PROVIDER_FEEDS = _read_by("alpaca_market_data", "polygon_market_data")
ALPACA_FEED, POLYGON_FEED, SYNTHETIC_FEED = (
    _read_by("alpaca_market_data"),
    _read_by("polygon_market_data"),
    _read_by("market_data"),
)
STRATEGY, EXECUTION, STORAGE = _read_by("strategy"), _read_by("execution"), _read_by("storage")
API, DASHBOARD = _read_by("api"), _read_by("dashboard")
CONSUMERS = STRATEGY | EXECUTION | STORAGE
BROKER = EXECUTION | API
"""The paper broker's costs, limits, sizing and exits: execution's, and the API's for the backtests
it runs (POST /backtests trades with the stack's own broker)."""
EVERY_SERVICE = FEEDS | CONSUMERS | API | DASHBOARD


class SettingsError(ValueError):
    """A configuration value was rejected; the message names the variable."""


class Settings(BaseSettings):
    """Every knob of the system; one instance per process."""

    model_config = SettingsConfigDict(
        env_file=".env", env_file_encoding="utf-8", extra="ignore", case_sensitive=False
    )

    # Connections. Empty means "not configured": `tradebot up` then starts embedded servers.
    database_url: Annotated[str, STORAGE | API] = Field(
        "postgresql://postgres:password@localhost:5432/tradebot",
        description="PostgreSQL/TimescaleDB connection URL",
    )
    redis_url: Annotated[str, EVERY_SERVICE] = Field(
        "redis://localhost:6379", description="Redis connection URL"
    )

    # Market data and symbols.
    data_source: Annotated[DataSourceName, FEEDS | STORAGE | API | DASHBOARD] = DEFAULT_SOURCE
    symbol_mode: Annotated[SymbolMode, FEEDS] = "custom"
    symbols: Annotated[tuple[str, ...], NoDecode, FEEDS] = DEFAULT_SYMBOLS
    max_symbols: Annotated[int, FEEDS] = Field(500, ge=1, le=20_000)
    max_websocket_symbols: Annotated[int, FEEDS] = Field(30, ge=1, le=1_000)
    tick_interval: Annotated[float, SYNTHETIC_FEED] = Field(
        1.0, gt=0, le=3600, description="seconds between ticks per symbol"
    )
    ticks_per_second: Annotated[float, SYNTHETIC_FEED] = Field(
        0, ge=0, description="total synthetic tick rate; 0 derives it from TICK_INTERVAL"
    )

    # Provider credentials (only the chosen data source needs its own).
    alpaca_key: Annotated[str | None, ALPACA_FEED] = None
    alpaca_secret: Annotated[str | None, ALPACA_FEED] = None
    polygon_api_key: Annotated[str | None, POLYGON_FEED] = None
    # Provider endpoints; overridden to point at a proxy or at the test suite's local servers.
    alpaca_stream_url: Annotated[str, ALPACA_FEED] = Field(
        "wss://stream.data.alpaca.markets/v2/iex", description="Alpaca market-data WebSocket"
    )
    alpaca_data_url: Annotated[str, ALPACA_FEED] = Field(
        "https://data.alpaca.markets", description="Alpaca market-data REST"
    )
    alpaca_trading_url: Annotated[str, NO_SERVICE] = Field(
        "https://paper-api.alpaca.markets", description="Alpaca trading REST (assets for `symbols fetch`)"
    )
    alpaca_feed: Annotated[Literal["iex", "sip"], ALPACA_FEED] = "iex"
    polygon_rest_url: Annotated[str, POLYGON_FEED] = Field(
        "https://api.polygon.io", description="Polygon REST (POLYGON_REST_URL)"
    )
    polygon_ws_url: Annotated[str, POLYGON_FEED] = Field(
        "wss://socket.polygon.io", description="Polygon WebSocket (POLYGON_WS_URL)"
    )
    provider_silence_timeout: Annotated[float, PROVIDER_FEEDS] = Field(
        60, gt=0, le=3_600, description="reconnect a provider feed silent this many seconds"
    )
    provider_auth_retry: Annotated[float, PROVIDER_FEEDS] = Field(
        60, gt=0, le=86_400, description="seconds before retrying rejected or missing credentials"
    )
    symbols_file: Annotated[str, FEEDS] = Field(
        "~/.cache/tradebot/symbols.json",
        description="refreshed symbol universe written by `tradebot symbols fetch`; used when present",
    )

    # Historical backfill.
    backfill_batch_size: Annotated[int, NO_SERVICE] = Field(10, ge=1, le=1_000)
    backfill_concurrent_requests: Annotated[int, PROVIDER_FEEDS] = Field(3, ge=1, le=100)
    rate_limit_delay: Annotated[float, PROVIDER_FEEDS] = Field(0.5, ge=0, le=60)

    # Paper execution costs and risk limits.
    starting_cash: Annotated[float, EXECUTION | STORAGE | API | DASHBOARD] = Field(100_000, gt=0)
    slippage_bps: Annotated[float, BROKER] = Field(5, ge=0, le=1_000)
    fee_per_share: Annotated[float, BROKER] = Field(0.005, ge=0)
    min_fee: Annotated[float, BROKER] = Field(1.0, ge=0)
    max_position_per_symbol: Annotated[float, BROKER] = Field(1_000, gt=0, description="shares")
    max_order_notional: Annotated[float, BROKER] = Field(50_000, gt=0)
    max_open_positions: Annotated[int, BROKER] = Field(20, ge=1)
    daily_loss_limit: Annotated[float, BROKER] = Field(
        5_000, gt=0, description="stop trading after this loss in a day"
    )

    # ------------------------------------------------------------------ strategies, sizing, exits
    # (tradebot.strategy and tradebot.execution; a strategy's own parameters live on its class.)
    strategies: Annotated[tuple[str, ...], NoDecode, STRATEGY] = Field(
        ("sma_crossover", "rsi"), description="strategies to run (`tradebot strategies list`)"
    )
    strategy_params: Annotated[dict[str, dict[str, Any]], NoDecode, STRATEGY] = Field(
        default_factory=dict,
        description='JSON {strategy: {parameter: value}}, e.g. {"rsi": {"period": 10}}',
    )
    bar_close_grace: Annotated[float, STRATEGY | API] = Field(
        5, ge=0, le=3_600, description="seconds after its end that a quiet symbol's bar closes"
    )
    strategy_checkpoint_seconds: Annotated[float, STRATEGY] = Field(
        30, gt=0, le=3_600, description="how often a strategy replica checkpoints its state"
    )
    sizing: Annotated[SizingMode, BROKER] = Field(
        "equity_pct", description="quantity, notional, equity_pct or risk"
    )
    order_quantity: Annotated[float, BROKER] = Field(
        10, gt=0, description="shares per entry (SIZING=quantity)"
    )
    order_notional: Annotated[float, BROKER] = Field(
        5_000, gt=0, description="dollars per entry (SIZING=notional)"
    )
    order_equity_pct: Annotated[float, BROKER] = Field(
        10, gt=0, le=100, description="% of equity per entry (SIZING=equity_pct)"
    )
    risk_per_trade_pct: Annotated[float, BROKER] = Field(
        0.5, gt=0, le=100, description="% of equity lost if the stop is hit (SIZING=risk)"
    )
    stop_loss_pct: Annotated[float, BROKER] = Field(
        2, ge=0, lt=100, description="stop below the entry, %; 0 = none"
    )
    stop_loss_atr: Annotated[float, BROKER] = Field(
        2, ge=0, le=100, description="stop below the entry in signal ATRs (before STOP_LOSS_PCT); 0 = off"
    )
    take_profit_pct: Annotated[float, BROKER] = Field(
        4, ge=0, le=1_000, description="take profit above the entry, %; 0 = none"
    )
    trailing_stop_pct: Annotated[float, BROKER] = Field(
        0, ge=0, lt=100, description="exit this % below the high since entry"
    )
    min_signal_strength: Annotated[float, BROKER] = Field(
        0.3, ge=0, le=1, description="weaker buy signals are not traded"
    )
    cooldown_seconds: Annotated[float, BROKER] = Field(
        300, ge=0, le=86_400, description="no new entry this soon after a fill"
    )
    watermark_wait_seconds: Annotated[float, EXECUTION] = Field(
        5, gt=0, le=3_600, description="execution waits this long for the strategy to cover a tick"
    )
    # ------------------------------------------------------------------ end of strategies, sizing, exits

    # History API and dashboard.
    api_port: Annotated[int, API] = Field(
        8000, ge=0, le=65_535, description="port of the history API; 0 picks one"
    )
    dashboard_port: Annotated[int, DASHBOARD] = Field(
        8001, ge=0, le=65_535, description="port of the dashboard; 0 picks one"
    )
    api_url: Annotated[str, DASHBOARD] = Field(
        "http://localhost:8000", description="where the dashboard reaches the API"
    )
    auth_token: Annotated[str, API | DASHBOARD] = Field(
        "", description="bearer token of the API's mutating routes; unset, they are refused"
    )
    equity_snapshot_seconds: Annotated[float, STORAGE] = Field(
        60, ge=1, le=86_400, description="how often storage records the account's equity"
    )
    notify_webhook_url: Annotated[str, DASHBOARD] = Field(
        "", description="JSON POST (Slack/Discord) of fills, rejections, errors, daily summary"
    )
    notify_max_per_minute: Annotated[int, DASHBOARD] = Field(
        20, ge=1, le=10_000, description="notifications sent per minute at most (the rest are counted)"
    )

    # Operations.
    log_level: Annotated[LogLevel, EVERY_SERVICE] = "INFO"
    log_format: Annotated[Literal["json", "console"], EVERY_SERVICE] = "console"
    probe_port: Annotated[int, EVERY_SERVICE] = Field(
        0, ge=0, le=65_535, description="health endpoint port; 0 picks one"
    )
    stream_maxlen: Annotated[int, EVERY_SERVICE] = Field(
        1_000_000, ge=1_000, description="approximate MAXLEN of each stream"
    )
    batch_size: Annotated[int, CONSUMERS] = Field(
        1_000, ge=1, le=100_000, description="stream entries read per call"
    )
    tick_shards: Annotated[int, FEEDS | CONSUMERS | API | DASHBOARD] = Field(
        1, ge=1, le=1_024, description="tick streams split by symbol (part of a stack's identity)"
    )
    replica_index: Annotated[int, STRATEGY] = Field(
        0, ge=0, le=1_023, description="this replica's index k (pod ordinal)"
    )
    replica_count: Annotated[int, STRATEGY] = Field(
        1, ge=1, le=1_024, description="replicas R of a sharded service"
    )
    claim_idle_seconds: Annotated[float, CONSUMERS] = Field(
        30, gt=0, le=86_400, description="reclaim entries another consumer left pending this long"
    )

    @field_validator("symbols", "strategies", mode="before")
    @classmethod
    def _split_comma_list(cls, value: object) -> object:
        if isinstance(value, str):
            return tuple(item.strip() for item in value.split(",") if item.strip())
        return value

    @field_validator("symbols")
    @classmethod
    def _normalise_symbols(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        from tradebot.common.symbols import normalise_symbol

        return tuple(dict.fromkeys(normalise_symbol(s) for s in value))

    @field_validator("strategies")
    @classmethod
    def _known_strategies(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        from tradebot.strategy.registry import build_strategies

        build_strategies(value, {})
        return value

    @field_validator("strategy_params", mode="before")
    @classmethod
    def _parse_strategy_params(cls, value: object) -> object:
        if isinstance(value, str | bytes):
            try:
                return orjson.loads(value or b"{}")
            except orjson.JSONDecodeError as error:
                expected = '{"strategy": {"parameter": value}}'
                raise ValueError(f"not JSON ({error}); expected {expected}") from None
        return value

    @field_validator("strategy_params")
    @classmethod
    def _valid_strategy_params(
        cls, value: dict[str, dict[str, Any]], info: ValidationInfo
    ) -> dict[str, dict[str, Any]]:
        from tradebot.strategy.registry import build_strategies

        build_strategies(info.data.get("strategies", ()), value)
        return value

    @field_validator("log_level", mode="before")
    @classmethod
    def _upper_log_level(cls, value: object) -> object:
        return value.upper() if isinstance(value, str) else value

    @model_validator(mode="after")
    def _check_cross_field_rules(self) -> Settings:
        if self.symbol_mode == "custom" and not self.symbols:
            raise ValueError("SYMBOLS must list at least one symbol when SYMBOL_MODE=custom")
        if self.replica_index >= self.replica_count:
            raise ValueError(f"REPLICA_INDEX must be below REPLICA_COUNT ({self.replica_count})")
        if self.replica_count > self.tick_shards:
            raise ValueError(
                f"REPLICA_COUNT={self.replica_count} exceeds TICK_SHARDS={self.tick_shards}: "
                "a replica would own no shard"
            )
        return self

    def credentials_problem(self) -> str | None:
        """Why the chosen data source cannot start, or None when its keys are present."""
        needed = data_source(self.data_source).credentials
        if all(getattr(self, name.lower()) for name in needed):
            return None
        return f"DATA_SOURCE={self.data_source} needs {' and '.join(needed)}"


def readers(name: str) -> frozenset[str]:
    """The services that read setting `name` (a Settings field); KeyError if it declares none."""
    found = [m for m in Settings.model_fields[name].metadata if isinstance(m, ReadBy)]
    if not found:
        raise KeyError(f"setting {name} does not say which services read it (ReadBy metadata)")
    return found[0].services


def variables_read_by(service_id: str) -> tuple[str, ...]:
    """The environment variables one service reads, in field order (what its pods depend on)."""
    return tuple(name.upper() for name in Settings.model_fields if service_id in readers(name))


def describe_validation_error(error: ValidationError) -> str:
    """One line per rejected variable, in the words a person edits: the env var name."""
    lines = []
    for problem in error.errors():
        variable = "_".join(str(part) for part in problem["loc"] if isinstance(part, str)).upper()
        message = problem["msg"].removeprefix("Value error, ")
        received = problem.get("input")
        if variable and not isinstance(received, dict):
            lines.append(f"{variable}={received!r} is invalid: {message}")
        else:
            lines.append(message)
    return "\n".join(lines)


def load_settings(**overrides: Any) -> Settings:
    """Read the environment (and `.env`); raise SettingsError with a readable message."""
    try:
        return Settings(**overrides)
    except ValidationError as error:
        raise SettingsError(describe_validation_error(error)) from None
