"""Service health as the API and the dashboard show it: every service that sent a heartbeat."""

from __future__ import annotations

from datetime import UTC, datetime

from redis.asyncio import Redis

from tradebot.api.models import ServiceStatus
from tradebot.common.heartbeat import ServiceHealth, read_health
from tradebot.providers.registry import DATA_SOURCES


def service_status(health: ServiceHealth, data_source: str) -> ServiceStatus:
    """Pure: one service's health, flagged when it is the market-data service of DATA_SOURCE."""
    heartbeat = health.heartbeat or {}
    last_error = heartbeat.get("last_error")
    reason, at = (
        (last_error.get("reason"), last_error.get("time")) if isinstance(last_error, dict) else (None, None)
    )
    return ServiceStatus(
        service=health.service,
        name=health.name,
        state=health.state,
        heartbeat_age=health.heartbeat_age,
        error_count=health.error_count,
        status=health.status,
        message=_text(heartbeat.get("message")),
        last_error=_text(reason),
        last_error_at=datetime.fromtimestamp(at, UTC) if isinstance(at, int | float) else None,
        active_market_data=health.service
        == (DATA_SOURCES[data_source].service_id if data_source in DATA_SOURCES else None),
    )


def _text(value: object) -> str | None:
    """A heartbeat's text field, or None when it is missing or not text (heartbeats are untrusted)."""
    return value if isinstance(value, str) and value else None


async def service_statuses(redis: Redis, data_source: str) -> list[ServiceStatus]:
    return [service_status(h, data_source) for h in await read_health(redis)]
