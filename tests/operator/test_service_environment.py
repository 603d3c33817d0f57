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
from tradebot.common.connections import connect_redis
from tradebot.common.heartbeat import read_health
from tradebot.common.settings import Settings, readers, variables_read_by
from tradebot.providers.registry import DATA_SOURCES

pytestmark = pytest.mark.integration
SERVICE_IDS = [*sorted(SERVICES), "execution@alpaca"]


def recording_settings(**values: Any) -> tuple[Settings, set[str]]:
    """Settings that remember which fields were read, into the set returned beside them."""
    seen: set[str] = set()

    class RecordingSettings(Settings):
        def __getattribute__(self, name: str) -> Any:
            if name in Settings.model_fields:
                seen.add(name)
            return super().__getattribute__(name)

    settings = RecordingSettings(_env_file=None, **values)
    seen.clear()
    return settings, seen


def test_every_setting_declares_its_readers() -> None:
    for name in Settings.model_fields:
        readers(name)  # KeyError naming the field when it has no ReadBy


def provider_values(service_id: str, venue: str) -> tuple[dict[str, Any], Any]:
    """The settings pointing a provider's service at its local server, and that server (started)."""
    source = next((s for s in DATA_SOURCES.values() if s.service_id == service_id), None)
    if venue == "alpaca":
        trading = FakeAlpacaTrading(["AAPL"]).start()
        return {"execution_venue": "alpaca", "alpaca_key": trading.key, "alpaca_secret": trading.secret,
                "alpaca_trading_url": trading.rest_url,
                "alpaca_trading_stream_url": trading.stream_url}, trading  # fmt: skip
    if source is not None and source.name == "alpaca":
        alpaca = FakeAlpaca(["AAPL"]).start()
        return {"data_source": "alpaca", "alpaca_key": alpaca.key, "alpaca_secret": alpaca.secret,
                "alpaca_stream_url": alpaca.stream_url,
                "alpaca_data_url": alpaca.rest_url}, alpaca  # fmt: skip
    if source is not None and source.name == "polygon":
        polygon = FakePolygon(["AAPL"]).start()
        return {"data_source": "polygon", "polygon_api_key": polygon.key, "polygon_ws_url": polygon.ws_url,
                "polygon_rest_url": polygon.rest_url}, polygon  # fmt: skip
    return {}, None


async def settings_read_by(service: str, redis_url: str, database_url: str) -> set[str]:
    """Run the service until it has beaten twice; the settings it read meanwhile."""
    service_id, _, venue = service.partition("@")
    values, fake = provider_values(service_id, venue)
    redis = connect_redis(redis_url)
    try:
        settings, seen = recording_settings(
            redis_url=redis_url, database_url=database_url, probe_port=0, api_port=0, dashboard_port=0,
            ticks_per_second=50, auth_token=AUTH_TOKEN, **values,
        )  # fmt: skip
        async with running(build_service(service_id, settings), settings=settings):
            for _ in range(100):
                health = await read_health(redis, [service_id])
                if health and health[0].status == "running" and (health[0].heartbeat_age or 99) < 5:
                    break
                await asyncio.sleep(0.1)
            else:
                raise AssertionError(f"{service} never ran: {health}")
            await asyncio.sleep(6)  # past the next heartbeat
        return set(seen)
    finally:
        await redis.aclose()
        if fake is not None:
            fake.stop()


async def test_each_service_reads_only_settings_declared_for_it(redis_url: str, database_url: str) -> None:
    """Every service at once (each on its own Redis database, as if a stack of its own): one wait."""
    base, _, _ = redis_url.partition("?")
    reads = await asyncio.gather(
        *(settings_read_by(service, f"{base}?db={n}", database_url) for n, service in enumerate(SERVICE_IDS))
    )
    undeclared = {}
    for service, read in zip(SERVICE_IDS, reads, strict=True):
        assert read, f"the recording saw nothing for {service}"
        declared = {name.lower() for name in variables_read_by(service.partition("@")[0])}
        if read - declared:
            undeclared[service] = sorted(read - declared)
    assert not undeclared, f"read without saying so (ReadBy): {undeclared}"
