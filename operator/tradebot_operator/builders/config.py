"""The stack's environment (ConfigMap), the generated database Secret, and per-service checksums.

The variable names are those `tradebot.common.settings.Settings` reads. Each service's
Deployment carries a checksum of only the variables that service uses, so a spec change
rolls just the Deployments it affects (symbols roll market data, risk limits execution).
"""

from __future__ import annotations

import base64
import hashlib
import secrets
from collections.abc import Mapping
from urllib.parse import quote

from tradebot.providers.registry import DATA_SOURCES
from tradebot_operator.builders.common import APP_PORTS, PROBE_PORT, Obj, Stack, metadata

DB_USER = "tradebot"
DB_NAME = "tradebot"
REDIS_PORT = 6379
POSTGRES_PORT = 5432

COMMON_VARIABLES = ("REDIS_URL", "LOG_FORMAT", "PROBE_PORT")
MARKET_DATA_VARIABLES = ("DATA_SOURCE", "SYMBOL_MODE", "SYMBOLS", "MAX_SYMBOLS", "MAX_WEBSOCKET_SYMBOLS")
# Which ConfigMap variables each service reads (besides COMMON_VARIABLES).
SERVICE_VARIABLES: dict[str, tuple[str, ...]] = {
    "market_data": MARKET_DATA_VARIABLES,
    "alpaca_market_data": MARKET_DATA_VARIABLES,
    "polygon_market_data": MARKET_DATA_VARIABLES,
    "strategy": (),
    "execution": ("MAX_POSITION_PER_SYMBOL", "MAX_ORDER_NOTIONAL", "MAX_OPEN_POSITIONS", "DAILY_LOSS_LIMIT"),
    "storage": ("DATA_SOURCE",),
    "api": ("DATA_SOURCE", "API_PORT"),
    "dashboard": ("DATA_SOURCE", "DASHBOARD_PORT", "API_URL"),
}
# Services that reach PostgreSQL get DATABASE_URL from the generated Secret; no other does.
DATABASE_SERVICES = ("storage", "api")
# Provider credentials: variable names, which are also the keys expected in spec.credentials.secretRef.
CREDENTIAL_KEYS: dict[str, tuple[str, ...]] = {name: s.credentials for name, s in DATA_SOURCES.items()}


def config_name(stack: Stack) -> str:
    return stack.child_name("config")


def db_secret_name(stack: Stack) -> str:
    return stack.child_name("db")


def _number(value: float) -> str:
    """1000.0 -> '1000', 0.5 -> '0.5': what a person would have written in .env."""
    return str(int(value)) if float(value).is_integer() else repr(float(value))


def environment(stack: Stack) -> dict[str, str]:
    """The ConfigMap's data: the environment of the original system for this stack."""
    spec, risk = stack.spec, stack.spec["risk"]
    env = {
        "DATA_SOURCE": spec["dataSource"],
        "SYMBOL_MODE": spec["symbolMode"],
        "MAX_SYMBOLS": str(spec["maxSymbols"]),
        "MAX_WEBSOCKET_SYMBOLS": str(spec["maxWebsocketSymbols"]),
        "MAX_POSITION_PER_SYMBOL": _number(risk["maxPositionPerSymbol"]),
        "MAX_ORDER_NOTIONAL": _number(risk["maxOrderNotional"]),
        "MAX_OPEN_POSITIONS": str(risk["maxOpenPositions"]),
        "DAILY_LOSS_LIMIT": _number(risk["dailyLossLimit"]),
        "REDIS_URL": f"redis://{stack.child_name('redis')}:{REDIS_PORT}",
        "PROBE_PORT": str(PROBE_PORT),
        "LOG_FORMAT": "json",
        "API_PORT": str(APP_PORTS["api"]),
        "DASHBOARD_PORT": str(APP_PORTS["dashboard"]),
        "API_URL": f"http://{stack.child_name('api')}:{APP_PORTS['api']}",
    }
    if spec.get("symbols"):
        env["SYMBOLS"] = ",".join(spec["symbols"])
    return dict(sorted(env.items()))


def config_checksum(env: Mapping[str, str], service_id: str) -> str:
    """A digest of the variables one service reads; it changes only when those do."""
    names = sorted((*COMMON_VARIABLES, *SERVICE_VARIABLES[service_id]))
    text = "\n".join(f"{name}={env.get(name, '')}" for name in names)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def config_map(stack: Stack) -> Obj:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": metadata(stack, config_name(stack), "config"),
        "data": environment(stack),
    }


def generate_password() -> str:
    """URL-safe, so it goes into DATABASE_URL unquoted; kept in the Secret across reconciles."""
    return secrets.token_urlsafe(24)


def database_url(stack: Stack, password: str) -> str:
    host = stack.child_name("timescaledb")
    return f"postgresql://{DB_USER}:{quote(password, safe='')}@{host}:{POSTGRES_PORT}/{DB_NAME}"


def db_secret(stack: Stack, password: str) -> Obj:
    values = {
        "POSTGRES_USER": DB_USER,
        "POSTGRES_PASSWORD": password,
        "POSTGRES_DB": DB_NAME,
        "DATABASE_URL": database_url(stack, password),
    }
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": metadata(stack, db_secret_name(stack), "database"),
        "type": "Opaque",
        "data": {key: base64.b64encode(value.encode()).decode() for key, value in values.items()},
    }


def password_from_secret(secret: Mapping | None) -> str | None:
    """The password of an existing generated Secret (a dict as the API returns it), if any."""
    data = (secret or {}).get("data") or {}
    raw = data.get("POSTGRES_PASSWORD")
    return base64.b64decode(raw).decode() if raw else None
