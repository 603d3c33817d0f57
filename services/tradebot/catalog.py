"""Every runnable service by id, imported only when it runs (keeps the CLI fast)."""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

from tradebot.common.service import Service
from tradebot.common.settings import Settings
from tradebot.providers.registry import DATA_SOURCES, EXECUTION_VENUES, load

# The pipeline after market data, in start order: import path and what it does.
PIPELINE: dict[str, tuple[str, str]] = {
    "strategy": (
        "tradebot.strategy.service:StrategyService",
        "runs the strategies on ticks and publishes signals",
    ),
    "execution": (
        "tradebot.catalog:execution_service",
        "trades signals into orders, fills and positions (EXECUTION_VENUE: simulated or alpaca)",
    ),
    "storage": ("tradebot.storage.service:StorageService", "writes every stream into PostgreSQL/TimescaleDB"),
    "api": (
        "tradebot.api.service:ApiService",
        "the history API over HTTP (API_PORT, default 8000; OpenAPI at /docs)",
    ),
    "dashboard": (
        "tradebot.dashboard.service:DashboardService",
        "the live dashboard in the browser (DASHBOARD_PORT, default 8001)",
    ),
}
SERVICES: dict[str, str] = {
    **{source.service_id: source.service for source in DATA_SOURCES.values()},
    **{service_id: path for service_id, (path, _) in PIPELINE.items()},
}
SERVICE_SUMMARIES: dict[str, str] = {
    **{source.service_id: source.description for source in DATA_SOURCES.values()},
    **{service_id: summary for service_id, (_, summary) in PIPELINE.items()},
}


def execution_service(settings: Settings) -> Service:
    """The execution service of EXECUTION_VENUE (the service id is `execution` for every venue)."""
    service: Service = load(EXECUTION_VENUES[settings.execution_venue].service)(settings)
    return service


def service_factory(service_id: str) -> Callable[[Settings], Service]:
    """What builds a service from Settings; KeyError names the known ones."""
    if service_id not in SERVICES:
        raise KeyError(f"unknown service {service_id!r}; choose one of {', '.join(SERVICES)}")
    service_class = load(SERVICES[service_id])
    source = next((s for s in DATA_SOURCES.values() if s.service_id == service_id and s.feed), None)
    return partial(service_class, source=source) if source else service_class


def build_service(service_id: str, settings: Settings) -> Service:
    return service_factory(service_id)(settings)
