"""Connections to Redis and PostgreSQL that survive their servers going away.

redis-py reconnects on the next command and asyncpg pools replace broken
connections, so services only need to retry the failed operation with backoff;
`TRANSIENT_ERRORS` is what counts as "the server went away".
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TypeVar
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import redis.exceptions
from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff

TRANSIENT_ERRORS: tuple[type[Exception], ...] = (
    redis.exceptions.ConnectionError,
    redis.exceptions.TimeoutError,
    redis.exceptions.BusyLoadingError,
    asyncpg.PostgresConnectionError,
    asyncpg.CannotConnectNowError,
    asyncpg.InterfaceError,
    ConnectionError,
    OSError,
)


T = TypeVar("T")


class ConfigurationError(ValueError):
    """A setting no retry can fix (a malformed URL, a port in use): the service stops, naming it."""


def redacted(url: str) -> str:
    """A URL fit for a log line: without its password."""
    try:
        parts = urlsplit(url)
        if parts.password:
            netloc = parts.netloc.replace(f":{parts.password}@", ":***@")
            return urlunsplit(parts._replace(netloc=netloc))
    except ValueError:
        pass
    return url


def connect_redis(url: str) -> Redis:
    """A client for `redis://`, `rediss://` or `unix://` URLs (connects lazily)."""
    try:
        return Redis.from_url(
            url,
            decode_responses=False,
            health_check_interval=15,
            retry=Retry(ExponentialBackoff(cap=1.0, base=0.05), retries=3),
            retry_on_error=[redis.exceptions.ConnectionError, redis.exceptions.TimeoutError],
        )
    except ValueError as error:
        raise ConfigurationError(f"REDIS_URL={redacted(url)!r} is invalid: {error}") from None


async def _configured(url: str, connect: Callable[[], Awaitable[T]]) -> T:
    """Connect, telling a malformed DATABASE_URL (asyncpg says ValueError) from a server away."""
    try:
        return await connect()
    except (asyncpg.ClientConfigurationError, ValueError) as error:
        raise ConfigurationError(f"DATABASE_URL={redacted(url)!r} is invalid: {error}") from None


async def connect_postgres(url: str, min_size: int = 1, max_size: int = 4) -> asyncpg.Pool:
    """A pool whose connections are checked before use, so a restarted server is survived."""
    return await _configured(
        url,
        lambda: asyncpg.create_pool(
            url,
            min_size=min_size,
            max_size=max_size,
            command_timeout=60,
            max_inactive_connection_lifetime=60,
            server_settings={"application_name": "tradebot", "timezone": "UTC"},
        ),
    )


async def connect_postgres_once(url: str, application: str) -> asyncpg.Connection:
    """One dedicated connection (for session state such as temporary tables)."""
    return await _configured(
        url,
        lambda: asyncpg.connect(url, server_settings={"application_name": application, "timezone": "UTC"}),
    )
