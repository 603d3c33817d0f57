"""Service health as the API and the dashboard show it: every service that sent a heartbeat."""

from __future__ import annotations

from redis.asyncio import Redis

from tradebot.api.models import ServiceStatus
from tradebot.common.heartbeat import ServiceHealth, read_health
from tradebot.providers.registry import DATA_SOURCES


def service_status(health: ServiceHealth, data_source: str) -> ServiceStatus:
    """Pure: one service's health, flagged when it is the market-data service of DATA_SOURCE."""
    return ServiceStatus(
        service=health.service,
        name=health.name,
        state=health.state,
        heartbeat_age=health.heartbeat_age,
        error_count=health.error_count,
        status=health.status,
        active_market_data=health.service
        == (DATA_SOURCES[data_source].service_id if data_source in DATA_SOURCES else None),
    )


async def service_statuses(redis: Redis, data_source: str) -> list[ServiceStatus]:
    return [service_status(h, data_source) for h in await read_health(redis)]
