"""Connections to Redis and PostgreSQL that survive their servers going away.

redis-py reconnects on the next command and asyncpg pools replace broken
connections, so services only need to retry the failed operation with backoff;
`TRANSIENT_ERRORS` is what counts as "the server went away".
"""

from __future__ import annotations

import asyncpg
import redis.exceptions
from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff

TRANSIENT_ERRORS: tuple[type[BaseException], ...] = (
    redis.exceptions.ConnectionError,
    redis.exceptions.TimeoutError,
    redis.exceptions.BusyLoadingError,
    asyncpg.PostgresConnectionError,
    asyncpg.CannotConnectNowError,
    asyncpg.InterfaceError,
    ConnectionError,
    OSError,
)


def connect_redis(url: str) -> Redis:
    """A client for `redis://`, `rediss://` or `unix://` URLs (connects lazily)."""
    return Redis.from_url(
        url,
        decode_responses=False,
        health_check_interval=15,
        retry=Retry(ExponentialBackoff(cap=1.0, base=0.05), retries=3),
        retry_on_error=[redis.exceptions.ConnectionError, redis.exceptions.TimeoutError],
    )


async def connect_postgres(url: str, min_size: int = 1, max_size: int = 4) -> asyncpg.Pool:
    """A pool whose connections are checked before use, so a restarted server is survived."""
    return await asyncpg.create_pool(
        url,
        min_size=min_size,
        max_size=max_size,
        command_timeout=60,
        max_inactive_connection_lifetime=60,
        server_settings={"application_name": "tradebot", "timezone": "UTC"},
    )
