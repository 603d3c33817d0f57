"""Heartbeats and error counters in Redis, and reading them back as health.

Keys (ARCHITECTURE.md): `service:<id>:heartbeat` holds JSON with timestamp,
status, pid, host and counters, refreshed every few seconds with a TTL longer
than the "dead" threshold (so a stopped service is first seen ageing, then
missing), plus `message` (what the service says of its state) and `last_error`
(the reason and time of the newest error it counted, so a red card can say what
failed); `service:<id>:errors` is an integer counter.
"""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson
from redis.asyncio import Redis

from tradebot import __version__
from tradebot.common.health import (
    DEAD_AFTER,
    HealthState,
    classify,
    display_name,
)
from tradebot.common.keys import ERRORS_PATTERN, HEARTBEAT_PATTERN, errors_key, heartbeat_key

HEARTBEAT_INTERVAL = 5.0
HEARTBEAT_TTL = int(DEAD_AFTER * 2)
LAST_ERROR_LENGTH = 500  # characters of an error's reason kept in the heartbeat


@dataclass
class Heartbeat:
    """Writes one service's heartbeat and counts its errors."""

    redis: Redis
    service_id: str
    started_at: float = field(default_factory=time.time)
    host: str = field(default_factory=socket.gethostname)
    last_error: dict[str, Any] | None = None
    # What the service says goes to Redis, where a secret has no business (Redactor.redact).
    redact: Callable[[str], str] = field(default=lambda text: text, repr=False)

    async def beat(self, status: str, counters: Mapping[str, float], message: str | None = None) -> None:
        now = time.time()
        payload: dict[str, Any] = {
            "service": self.service_id,
            "status": status,
            "timestamp": now,
            "started_at": self.started_at,
            "pid": os.getpid(),
            "host": self.host,
            "version": __version__,
            "counters": dict(counters),
        }
        if message:
            payload["message"] = self.redact(message)
        if self.last_error:
            payload["last_error"] = self.last_error
        await self.redis.set(heartbeat_key(self.service_id), orjson.dumps(payload), ex=HEARTBEAT_TTL)

    async def count_error(self, reason: str, amount: int = 1) -> int:
        """Count an error; its reason goes out with the next heartbeat (even if this count fails)."""
        self.last_error = {"reason": self.redact(reason)[:LAST_ERROR_LENGTH], "time": time.time()}
        return int(await self.redis.incrby(errors_key(self.service_id), amount))


@dataclass(frozen=True)
class ServiceHealth:
    service: str
    name: str
    state: HealthState
    heartbeat_age: float | None
    error_count: int
    status: str | None
    heartbeat: dict[str, Any] | None

    def as_dict(self) -> dict[str, Any]:
        return {
            "service": self.service,
            "name": self.name,
            "state": self.state.value,
            "heartbeat_age": self.heartbeat_age,
            "error_count": self.error_count,
            "status": self.status,
            "heartbeat": self.heartbeat,
        }


def health_from_raw(
    service_id: str, raw_heartbeat: bytes | str | None, raw_errors: bytes | str | None, now: float
) -> ServiceHealth:
    """Pure: turn the two Redis values of one service into its health."""
    heartbeat = None
    age = None
    if raw_heartbeat:
        try:
            heartbeat = orjson.loads(raw_heartbeat)
            age = max(0.0, now - float(heartbeat["timestamp"]))
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
            heartbeat, age = None, None
    try:
        errors = int(raw_errors or 0)
    except ValueError:
        errors = 0
    return ServiceHealth(
        service=service_id,
        name=display_name(service_id),
        state=classify(age, errors),
        heartbeat_age=age,
        error_count=errors,
        status=heartbeat.get("status") if heartbeat else None,
        heartbeat=heartbeat,
    )


async def discover_service_ids(redis: Redis) -> list[str]:
    """Every service that has written a heartbeat or counted an error."""
    found: set[str] = set()
    for pattern in (HEARTBEAT_PATTERN, ERRORS_PATTERN):
        async for key in redis.scan_iter(match=pattern, count=500):
            found.add(key.decode().split(":", 2)[1])
    return sorted(found)


async def read_health(
    redis: Redis, service_ids: list[str] | None = None, now: float | None = None
) -> list[ServiceHealth]:
    """Health of the given services (default: all discovered), in one round trip."""
    ids = service_ids if service_ids is not None else await discover_service_ids(redis)
    if not ids:
        return []
    keys = [key for sid in ids for key in (heartbeat_key(sid), errors_key(sid))]
    values = await redis.mget(keys)
    moment = time.time() if now is None else now
    return [health_from_raw(sid, values[2 * i], values[2 * i + 1], moment) for i, sid in enumerate(ids)]


async def reset_errors(redis: Redis, service_id: str) -> None:
    await redis.delete(errors_key(service_id))
