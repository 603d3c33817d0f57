"""Metrics: event rates, consumer lag and pending, batch sizes — and lag in the heartbeat."""

from __future__ import annotations

import asyncpg
import orjson
import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader

from support.services import eventually, running
from tradebot.common import telemetry
from tradebot.common.keys import heartbeat_key
from tradebot.market_data.service import SyntheticMarketDataService
from tradebot.storage.schema import ensure_schema
from tradebot.storage.service import StorageService

pytestmark = pytest.mark.integration


@pytest.fixture
def metric_reader(monkeypatch):
    reader = InMemoryMetricReader()
    provider = MeterProvider(metric_readers=[reader])
    monkeypatch.setattr(telemetry, "meter", provider.get_meter)
    return reader


def points(reader: InMemoryMetricReader) -> dict[str, list]:
    found: dict[str, list] = {}
    for resource_metrics in reader.get_metrics_data().resource_metrics:
        for scope in resource_metrics.scope_metrics:
            for metric in scope.metrics:
                found.setdefault(metric.name, []).extend(metric.data.data_points)
    return found


async def test_storage_reports_rates_lag_and_batch_sizes(make_settings, redis, database_url, metric_reader):
    settings = make_settings(ticks_per_second=500)
    conn = await asyncpg.connect(database_url)
    await ensure_schema(conn)
    async with running(SyntheticMarketDataService(settings), StorageService(settings), settings=settings):

        async def stored_some() -> bool:
            return await conn.fetchval("SELECT count(*) FROM price_ticks_synthetic") > 200

        await eventually(stored_some, what="some ticks stored")

        async def heartbeat_has_lag() -> bool:
            raw = await redis.get(heartbeat_key("storage"))
            return raw is not None and "ticks_lag_ms" in orjson.loads(raw)["counters"]

        await eventually(heartbeat_has_lag, within=15, what="the storage heartbeat to report its lag")
        data = points(metric_reader)
    await conn.close()
    events = {
        (p.attributes["service"], p.attributes["counter"]): p.value for p in data["tradebot.service.events"]
    }
    assert events[("storage", "entries_stored")] > 200
    assert events[("market_data", "ticks_published")] >= events[("storage", "entries_stored")]
    lag_streams = {p.attributes["stream"] for p in data["tradebot.consumer.lag"]}
    assert {"ticks", "signals", "orders", "fills", "positions"} <= lag_streams
    assert all(p.value >= 0 for p in data["tradebot.consumer.pending"])
    [batches] = [p for p in data["tradebot.batch.size"] if p.attributes is None or not p.attributes]
    assert batches.count > 0 and batches.sum > 200
