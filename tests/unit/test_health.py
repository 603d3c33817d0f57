"""Health states (ARCHITECTURE.md) from heartbeat age and error count."""

from __future__ import annotations

import orjson
import pytest

from tradebot.common.health import HealthState, classify, display_name
from tradebot.common.heartbeat import health_from_raw


@pytest.mark.parametrize(
    ("age", "errors", "state"),
    [
        (0, 0, HealthState.HEALTHY),
        (29.9, 0, HealthState.HEALTHY),
        (30, 0, HealthState.DEGRADED),
        (59, 0, HealthState.DEGRADED),
        (60, 0, HealthState.UNHEALTHY),
        (300, 0, HealthState.UNHEALTHY),
        (301, 0, HealthState.DEAD),
        (None, 0, HealthState.DEAD),
        (5, 1, HealthState.ERROR),
        (45, 3, HealthState.ERROR),
        (None, 3, HealthState.DEAD),
    ],
)
def test_classify(age, errors, state):
    assert classify(age, errors) is state


def test_health_from_raw_values():
    beat = orjson.dumps({"timestamp": 1000.0, "status": "running"})
    health = health_from_raw("alpaca_market_data", beat, b"2", now=1010.0)
    assert health.heartbeat_age == 10.0
    assert health.state is HealthState.ERROR
    assert health.name == "alpaca market data" == display_name("alpaca_market_data")
    assert health_from_raw("storage", b"garbage", None, now=0).state is HealthState.DEAD
