"""Configuration from environment variables and `.env`, validated once at start.

The variable names and defaults are those of the original system, so existing
`.env` files keep working. A bad value raises `SettingsError` naming the
variable and what it accepts; services print it and exit instead of running
half-configured.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import timedelta
from enum import StrEnum
from typing import Annotated, Any, Literal, get_args
from urllib.parse import urlsplit

import orjson
from pydantic import (
    Field,
    SecretStr,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from tradebot.providers.registry import (
    DEFAULT_SOURCE,
    DEFAULT_VENUE,
    EXECUTION_VENUES,
    DataSourceName,
    ExecutionVenueName,
    data_source,
)

SizingMode = Literal["quantity", "notional", "equity_pct", "risk"]
SymbolMode = Literal["custom", "popular", "large", "mid", "small", "all"]
LogLevel = Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"]

DEFAULT_SYMBOLS = ("AAPL", "MSFT", "AMZN", "GOOG", "TSLA")
PAPER_TRADING_URL = "https://paper-api.alpaca.markets"
PAPER_TRADING_STREAM_URL = "wss://paper-api.alpaca.markets/stream"
LIVE_TRADING_HOST = "api.alpaca.markets"
MIN_TOKEN_LENGTH = 16


class AuthMode(StrEnum):
    """Who may read the API and the dashboard (changing anything always needs AUTH_TOKEN)."""

    REQUIRED = "required"
    READ_OPEN = "read-open"


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


DURATION_UNITS = {"s": 1, "m": 60, "h": 3_600, "d": 86_400, "w": 604_800}  # TICK_RETENTION=90d


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
        repr=False,  # it may hold a password
    )
    redis_url: Annotated[str, EVERY_SERVICE] = Field(
        "redis://localhost:6379", description="Redis connection URL", repr=False
    )
    tick_retention: Annotated[timedelta | None, STORAGE] = Field(
        None,
        description="TimescaleDB drops ticks older than this (e.g. 90d, 12h; bars stay); off keeps them all",
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

    # Provider credentials (only the chosen data source and execution venue need theirs).
    alpaca_key: Annotated[SecretStr | None, ALPACA_FEED | EXECUTION] = None
    alpaca_secret: Annotated[SecretStr | None, ALPACA_FEED | EXECUTION] = None
    polygon_api_key: Annotated[SecretStr | None, POLYGON_FEED] = None
    # Provider endpoints; overridden to point at a proxy or at the test suite's local servers.
    alpaca_stream_url: Annotated[str, ALPACA_FEED] = Field(
        "wss://stream.data.alpaca.markets/v2/iex", description="Alpaca market-data WebSocket"
    )
    alpaca_data_url: Annotated[str, ALPACA_FEED] = Field(
        "https://data.alpaca.markets", description="Alpaca market-data REST"
    )
    alpaca_trading_url: Annotated[str, EXECUTION] = Field(
        PAPER_TRADING_URL,
        description="Alpaca trading REST (orders with EXECUTION_VENUE=alpaca, assets for `symbols fetch`)",
    )
    alpaca_trading_stream_url: Annotated[str, EXECUTION] = Field(
        PAPER_TRADING_STREAM_URL, description="Alpaca trade_updates WebSocket (EXECUTION_VENUE=alpaca)"
    )
    alpaca_live_trading: Annotated[bool, EXECUTION] = Field(
        False,
        description="REAL MONEY: send EXECUTION_VENUE=alpaca orders to Alpaca's live account, not paper",
    )
    alpaca_order_type: Annotated[Literal["market", "limit"], EXECUTION] = Field(
        "market", description="order type at Alpaca (EXECUTION_VENUE=alpaca)"
    )
    alpaca_limit_offset_bps: Annotated[float, EXECUTION] = Field(
        10,
        ge=0,
        le=1_000,
        description="limit orders: how far past the signal's price (buys above, sells below)",
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
    provider_auth_retry: Annotated[float, PROVIDER_FEEDS | EXECUTION] = Field(
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

    # Execution: the venue, the paper broker's costs, and the risk limits (checked for every venue;
    # the API reads them too: POST /backtests trades with the stack's broker).
    execution_venue: Annotated[ExecutionVenueName, EXECUTION] = Field(
        DEFAULT_VENUE, description="where orders go: simulated (the paper broker) or alpaca (paper trading)"
    )
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
    bind_host: Annotated[str, EVERY_SERVICE] = Field(
        "127.0.0.1",
        description="interface the API, dashboard and probes listen on (containers set 0.0.0.0)",
    )

    # Authentication of the API and the dashboard (tradebot.api.auth).
    auth_token: Annotated[SecretStr | None, API | DASHBOARD] = Field(
        None, description="bearer token of the API and the dashboard's login; `tradebot up` makes one"
    )
    auth: Annotated[AuthMode, API | DASHBOARD] = Field(
        AuthMode.REQUIRED, description="required, or read-open: reads without the token"
    )
    session_seconds: Annotated[float, API | DASHBOARD] = Field(
        12 * 3_600, gt=0, le=30 * 86_400, description="lifetime of a dashboard login"
    )

    # The cockpit: equity snapshots (storage) and notifications (dashboard).
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

    @field_validator("tick_retention", mode="before")
    @classmethod
    def _parse_duration(cls, value: object) -> object:
        if not isinstance(value, str):
            return value
        text = value.strip().lower()
        if text in ("", "off", "none", "0"):
            return None
        if found := re.fullmatch(r"(\d+)\s*([smhdw]?)", text):
            return timedelta(seconds=int(found[1]) * DURATION_UNITS[found[2] or "s"])
        return value  # ISO 8601 (P90D), as pydantic reads a timedelta

    @field_validator("tick_retention")
    @classmethod
    def _at_least_an_hour(cls, value: timedelta | None) -> timedelta | None:
        if value is not None and value < timedelta(hours=1):
            raise ValueError("must be at least 1h (or off)")
        return value

    @field_validator("auth_token")
    @classmethod
    def _long_enough_token(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and len(value.get_secret_value()) < MIN_TOKEN_LENGTH:
            raise ValueError(f"must be at least {MIN_TOKEN_LENGTH} characters (e.g. `openssl rand -hex 32`)")
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
        if self.execution_venue == "alpaca":
            self._check_alpaca_venue()
        if self.replica_count > self.tick_shards:
            raise ValueError(
                f"REPLICA_COUNT={self.replica_count} exceeds TICK_SHARDS={self.tick_shards}: "
                "a replica would own no shard"
            )
        return self

    def _check_alpaca_venue(self) -> None:
        """Live trading only on purpose; exits only as Alpaca can hold them (bracket legs)."""
        urls = (self.alpaca_trading_url, self.alpaca_trading_stream_url)
        if not self.alpaca_live_trading and any(urlsplit(u).hostname == LIVE_TRADING_HOST for u in urls):
            raise ValueError(
                f"ALPACA_TRADING_URL/ALPACA_TRADING_STREAM_URL point at Alpaca's live endpoint "
                f"({LIVE_TRADING_HOST}: real money); set ALPACA_LIVE_TRADING=true to trade live on purpose"
            )
        if self.trailing_stop_pct > 0:
            raise ValueError(
                "TRAILING_STOP_PCT must be 0 with EXECUTION_VENUE=alpaca: an Alpaca bracket order "
                "holds a stop-loss and a take-profit, not a trailing stop"
            )

    def venue_credentials_problem(self) -> str | None:
        """Which of the execution venue's variables are unset; None when all are set."""
        venue = EXECUTION_VENUES[self.execution_venue]
        missing = [name for name in venue.credentials if not getattr(self, name.lower())]
        if not missing:
            return None
        needed = " and ".join(venue.credentials)
        return f"{' and '.join(missing)} not set: EXECUTION_VENUE={venue.name} needs {needed}"

    def secret_values(self) -> tuple[str, ...]:
        """Every configured secret, read by this service or not: the SecretStr settings and the
        passwords in connection URLs that were set (a default's "password" is no secret)."""
        given = {name: self.__dict__[name] for name in self.model_fields_set}  # no ReadBy: not a read
        values = [v.get_secret_value() for v in given.values() if isinstance(v, SecretStr)]
        values += [
            urlsplit(given[url]).password or "" for url in ("database_url", "redis_url") if url in given
        ]
        return tuple(value for value in values if value)

    def credentials_problem(self) -> str | None:
        """Why the chosen data source cannot start, or None when its keys are present."""
        needed = data_source(self.data_source).credentials
        if all(getattr(self, name.lower()) for name in needed):
            return None
        return f"DATA_SOURCE={self.data_source} needs {' and '.join(needed)}"


SECRET_SETTINGS = frozenset(
    name for name, info in Settings.model_fields.items() if SecretStr in get_args(info.annotation)
)
"""The settings holding secrets (SecretStr): never printed, redacted from logs and heartbeats."""


def reveal(secret: SecretStr | None) -> str:
    """A secret setting's value where it is used (a provider's SDK, a header); "" when unset."""
    return secret.get_secret_value() if secret is not None else ""


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
        if variable.lower() in SECRET_SETTINGS:  # never echo a secret, even a rejected one
            lines.append(f"{variable} is invalid: {message}")
        elif variable and not isinstance(received, dict):
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
