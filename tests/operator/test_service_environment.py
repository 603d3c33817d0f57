"""Every setting a service reads is declared as read by it (Settings' ReadBy metadata), so its pods roll.

Each service runs for real (Redis, PostgreSQL, the local Alpaca and Polygon servers) on a
Settings that records each field it is asked for; what it asked for must be what the
operator's ConfigMap checksum for that service covers.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from providers.fakes.alpaca import FakeAlpaca
from providers.fakes.alpaca_trading import FakeAlpacaTrading
from providers.fakes.polygon import FakePolygon
from support.auth import AUTH_TOKEN
from support.services import running
from tradebot.catalog import SERVICES, build_service
from tradebot.common.heartbeat import read_health
from tradebot.common.settings import Settings, readers, variables_read_by
from tradebot.providers.registry import DATA_SOURCES

pytestmark = pytest.mark.integration
SEEN: set[str] = set()


class RecordingSettings(Settings):
    """Settings that remember which fields were read."""

    def __getattribute__(self, name: str) -> Any:
        if name in Settings.model_fields:
            SEEN.add(name)
        return super().__getattribute__(name)


def test_every_setting_declares_its_readers() -> None:
    for name in Settings.model_fields:
        readers(name)  # KeyError naming the field when it has no ReadBy


@pytest.mark.parametrize("service_id", [*sorted(SERVICES), "execution@alpaca"])
async def test_a_service_reads_only_settings_declared_for_it(
    service_id: str, redis_url: str, database_url: str, redis: Any
) -> None:
    service_id, _, venue = service_id.partition("@")
    source = next((s for s in DATA_SOURCES.values() if s.service_id == service_id), None)
    fake: FakeAlpaca | FakePolygon | FakeAlpacaTrading | None = None
    values: dict[str, Any] = {"redis_url": redis_url, "database_url": database_url, "probe_port": 0,
                              "api_port": 0, "dashboard_port": 0, "ticks_per_second": 50,
                              "auth_token": AUTH_TOKEN}  # fmt: skip
    if venue == "alpaca":
        fake = FakeAlpacaTrading(["AAPL"]).start()
        values |= {"execution_venue": "alpaca", "alpaca_key": fake.key, "alpaca_secret": fake.secret,
                   "alpaca_trading_url": fake.rest_url,
                   "alpaca_trading_stream_url": fake.stream_url}  # fmt: skip
    elif source is not None and source.name == "alpaca":
        fake = FakeAlpaca(["AAPL"]).start()
        values |= {"data_source": "alpaca", "alpaca_key": fake.key, "alpaca_secret": fake.secret,
                   "alpaca_stream_url": fake.stream_url, "alpaca_data_url": fake.rest_url}  # fmt: skip
    elif source is not None and source.name == "polygon":
        fake = FakePolygon(["AAPL"]).start()
        values |= {"data_source": "polygon", "polygon_api_key": fake.key, "polygon_ws_url": fake.ws_url,
                   "polygon_rest_url": fake.rest_url}  # fmt: skip
    try:
        settings = RecordingSettings(_env_file=None, **values)
        SEEN.clear()
        service = build_service(service_id, settings)
        async with running(service, settings=settings):
            for _ in range(100):  # until it is up and has beaten twice
                health = await read_health(redis, [service_id])
                if health and health[0].status == "running" and (health[0].heartbeat_age or 99) < 5:
                    break
                await asyncio.sleep(0.1)
            await asyncio.sleep(6)
        read = set(SEEN)
    finally:
        if fake is not None:
            fake.stop()
    declared = {name.lower() for name in variables_read_by(service_id)}
    assert read, "the recording saw nothing"
    assert read <= declared, f"{service_id} reads {sorted(read - declared)} without saying so (ReadBy)"
