"""Every runnable service by id, imported only when it runs (keeps the CLI fast)."""

from __future__ import annotations

from importlib import import_module

from tradebot.common.service import Service
from tradebot.common.settings import Settings

SERVICES: dict[str, str] = {
    "market_data": "tradebot.market_data.service:SyntheticMarketDataService",
    "alpaca_market_data": "tradebot.market_data.alpaca:AlpacaMarketDataService",
    "polygon_market_data": "tradebot.market_data.polygon:PolygonMarketDataService",
    "strategy": "tradebot.strategy.service:StrategyService",
    "execution": "tradebot.execution.service:ExecutionService",
    "storage": "tradebot.storage.service:StorageService",
    "api": "tradebot.api.service:ApiService",
    "dashboard": "tradebot.dashboard.service:DashboardService",
}
SERVICE_SUMMARIES: dict[str, str] = {
    "market_data": "synthetic random-walk ticks onto the `ticks` stream",
    "alpaca_market_data": "Alpaca trades, quotes and bars (alpaca-py) onto `ticks`; gaps filled from REST",
    "polygon_market_data": "Polygon trades, quotes and minute bars (polygon-api-client) onto `ticks`",
    "strategy": "runs the strategies on ticks and publishes signals",
    "execution": "paper-trades signals into orders, fills and positions",
    "storage": "writes every stream into PostgreSQL/TimescaleDB",
    "api": "the history API over HTTP (API_PORT, default 8000; OpenAPI at /docs)",
    "dashboard": "the live dashboard in the browser (DASHBOARD_PORT, default 8001)",
}


def service_factory(service_id: str):
    """The class implementing a service; KeyError names the known ones."""
    if service_id not in SERVICES:
        raise KeyError(f"unknown service {service_id!r}; choose one of {', '.join(SERVICES)}")
    module, _, name = SERVICES[service_id].partition(":")
    return getattr(import_module(module), name)


def build_service(service_id: str, settings: Settings) -> Service:
    return service_factory(service_id)(settings)
