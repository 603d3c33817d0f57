"""The stack's environment (ConfigMap), the generated database Secret, and per-service checksums.

The variable names are those `tradebot.common.settings.Settings` reads, and which service
reads which is declared there once (`ReadBy`). Each service's pods carry a checksum of only
the variables it reads, so a spec change rolls exactly the services it affects (symbols
roll market data, risk limits execution) — by construction, not by a list kept here.
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from tradebot.common.settings import variables_read_by
from tradebot.providers.registry import DATA_SOURCES, EXECUTION_VENUES
from tradebot_operator.builders.access import AUTH_TOKEN, REDIS_URL, auth_secret_name, secret_value
from tradebot_operator.builders.common import (
    APP_PORTS,
    POSTGRES_PORT,
    PROBE_PORT,
    Obj,
    Stack,
    metadata,
)

if TYPE_CHECKING:
    from tradebot_operator.spec import Trading

DB_USER = "tradebot"
DB_NAME = "tradebot"
DATABASE_URL = "DATABASE_URL"


def config_name(stack: Stack) -> str:
    return stack.child_name("config")


def db_secret_name(stack: Stack) -> str:
    return stack.child_name("db")


def _trading_env(trading: Trading) -> dict[str, str]:
    """SIZING, ORDER_QUANTITY, ..., COOLDOWN_SECONDS: each field under its setting's variable."""
    return {
        name.upper(): value if isinstance(value, str) else _number(value)
        for name, value in trading.model_dump().items()
    }


def _number(value: float) -> str:
    """1000.0 -> '1000', 0.5 -> '0.5': what a person would have written in .env."""
    return str(int(value)) if float(value).is_integer() else repr(float(value))


def environment(stack: Stack) -> dict[str, str]:
    """The ConfigMap's data: the environment of the original system for this stack."""
    spec, risk = stack.spec, stack.spec.risk
    env = {
        "DATA_SOURCE": spec.data_source,
        "SYMBOL_MODE": spec.symbol_mode,
        "SYMBOLS": ",".join(spec.symbols),
        "MAX_SYMBOLS": str(spec.max_symbols),
        "MAX_WEBSOCKET_SYMBOLS": str(spec.max_websocket_symbols),
        "TICK_SHARDS": str(spec.tick_shards),
        "EXECUTION_VENUE": spec.execution.venue,
        "STRATEGIES": ",".join(choice.name for choice in spec.strategies),
        "STRATEGY_PARAMS": json.dumps(
            {c.name: c.params for c in spec.strategies if c.params}, sort_keys=True, separators=(",", ":")
        ),
        "MAX_POSITION_PER_SYMBOL": _number(risk.max_position_per_symbol),
        "MAX_ORDER_NOTIONAL": _number(risk.max_order_notional),
        "MAX_OPEN_POSITIONS": str(risk.max_open_positions),
        "DAILY_LOSS_LIMIT": _number(risk.daily_loss_limit),
        **_trading_env(spec.trading),
        "PROBE_PORT": str(PROBE_PORT),
        "LOG_FORMAT": "json",
        "API_PORT": str(APP_PORTS["api"]),
        "DASHBOARD_PORT": str(APP_PORTS["dashboard"]),
        "API_URL": f"http://{stack.child_name('api')}:{APP_PORTS['api']}",
    }
    return dict(sorted(env.items()))


def config_checksum(env: Mapping[str, str], service_id: str) -> str:
    """A digest of the variables one service reads; it changes only when those do."""
    text = "\n".join(f"{name}={env.get(name, '')}" for name in sorted(variables_read_by(service_id)))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def credential_keys(stack: Stack, service_id: str) -> tuple[str, ...]:
    """The provider keys a service needs: its data source's for the feed, the venue's for execution."""
    source = DATA_SOURCES[stack.spec.data_source]
    keys = source.credentials if service_id == source.service_id else ()
    if service_id == "execution":
        keys += EXECUTION_VENUES[stack.spec.execution.venue].credentials
    return keys


def secret_variables(stack: Stack, service_id: str) -> list[tuple[str, str, str]]:
    """(variable, Secret, key) of each secret a service reads: the database URL, the Redis URL
    (with its password), the API's token, provider keys."""
    reads = set(variables_read_by(service_id))
    generated = [
        (DATABASE_URL, db_secret_name(stack)), (REDIS_URL, auth_secret_name(stack)),
        (AUTH_TOKEN, auth_secret_name(stack)),
    ]  # fmt: skip
    found = [(variable, secret, variable) for variable, secret in generated if variable in reads]
    if stack.spec.credentials is not None:
        secret = stack.spec.credentials.secret_ref.name
        found += [(k, secret, k) for k in credential_keys(stack, service_id) if k in reads]
    return found


def config_map(stack: Stack) -> Obj:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": metadata(stack, config_name(stack), "config"),
        "data": environment(stack),
    }


def database_url(stack: Stack, password: str) -> str:
    host = stack.child_name("timescaledb")
    return f"postgresql://{DB_USER}:{quote(password, safe='')}@{host}:{POSTGRES_PORT}/{DB_NAME}"


def db_secret(stack: Stack, password: str) -> Obj:
    values = {
        "POSTGRES_USER": DB_USER,
        "POSTGRES_PASSWORD": password,
        "POSTGRES_DB": DB_NAME,
        DATABASE_URL: database_url(stack, password),
    }
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": metadata(stack, db_secret_name(stack), "database"),
        "type": "Opaque",
        "data": {key: base64.b64encode(value.encode()).decode() for key, value in values.items()},
    }


def password_from_secret(secret: Mapping[str, Any] | None) -> str | None:
    """The password of an existing generated Secret (a dict as the API returns it), if any."""
    return secret_value(secret, "POSTGRES_PASSWORD")
