"""One tick's path — market data → strategy → execution → storage — is one trace."""

from __future__ import annotations

import asyncpg
import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from support.services import eventually, running
from tradebot.common import telemetry
from tradebot.execution.service import ExecutionService
from tradebot.market_data.service import SyntheticMarketDataService
from tradebot.storage.schema import ensure_schema
from tradebot.storage.service import StorageService
from tradebot.strategy.service import StrategyService

pytestmark = pytest.mark.integration


@pytest.fixture
def spans(monkeypatch):
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    monkeypatch.setattr(telemetry, "_tracing_enabled", True)
    monkeypatch.setattr(telemetry, "tracer", provider.get_tracer)
    return exporter


async def test_a_fill_traces_back_to_its_tick(make_settings, database_url, spans):
    settings = make_settings(
        symbols="AAPL,MSFT",
        ticks_per_second=200,
        min_signal_strength=0,
        cooldown_seconds=0,
        strategy_params={"sma_crossover": {"fast": 2, "slow": 4, "input": "trades"}},
    )
    conn = await asyncpg.connect(database_url)
    await ensure_schema(conn)
    services = [SyntheticMarketDataService(settings, seed=1), StrategyService(settings),
                ExecutionService(settings), StorageService(settings)]  # fmt: skip
    async with running(*services, settings=settings):

        def stored_fill_spans():
            return [s for s in spans.get_finished_spans() if s.name == "stored fill"]

        async def a_fill_was_stored() -> bool:
            return bool(stored_fill_spans())

        await eventually(a_fill_was_stored, what="a stored fill's span")
    await conn.close()
    trace_id = stored_fill_spans()[0].context.trace_id
    names = {s.name for s in spans.get_finished_spans() if s.context.trace_id == trace_id}
    assert {"publish tick", "evaluate tick", "execute signal", "stored tick", "stored signal",
            "stored fill"} <= names  # fmt: skip
