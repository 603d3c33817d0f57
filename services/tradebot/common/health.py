"""Service health states, shared by the dashboard, the API and the operator.

healthy: heartbeat < 30 s old and no errors; degraded: 30–60 s; unhealthy:
1–5 min; dead: > 5 min or missing; error: the error counter is above zero.
"""

from __future__ import annotations

from enum import StrEnum

DEGRADED_AFTER = 30.0
UNHEALTHY_AFTER = 60.0
DEAD_AFTER = 300.0


class HealthState(StrEnum):
    HEALTHY = "healthy"
    DEGRADED = "degraded"
    UNHEALTHY = "unhealthy"
    DEAD = "dead"
    ERROR = "error"


def classify(heartbeat_age: float | None, error_count: int) -> HealthState:
    """The state of a service from its heartbeat age in seconds (None: missing) and errors."""
    if heartbeat_age is None or heartbeat_age > DEAD_AFTER:
        return HealthState.DEAD
    if error_count > 0:
        return HealthState.ERROR
    if heartbeat_age >= UNHEALTHY_AFTER:
        return HealthState.UNHEALTHY
    if heartbeat_age >= DEGRADED_AFTER:
        return HealthState.DEGRADED
    return HealthState.HEALTHY


def display_name(service_id: str) -> str:
    """'alpaca_market_data' -> 'alpaca market data', as people read it."""
    return service_id.replace("_", " ")
