"""Every service answers liveness and readiness probes, and a stop is graceful."""

from __future__ import annotations

import signal

import httpx
import orjson
import pytest

from support.services import eventually, running, service_process, stop_process
from tradebot.common.keys import heartbeat_key
from tradebot.dashboard.service import DashboardService
from tradebot.strategy.service import StrategyService

pytestmark = pytest.mark.integration


async def test_probes_report_liveness_and_readiness(make_settings):
    settings = make_settings()
    async with running(StrategyService(settings), settings=settings) as [strategy]:
        await eventually(lambda: _ready(strategy), what="strategy ready")
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{strategy.probe_port}") as client:
            live, ready = await client.get("/livez"), await client.get("/readyz")
            assert live.status_code == 200 and live.json()["ok"] is True
            assert ready.status_code == 200 and ready.json()["status"] == "running"
            strategy.ctx.ready = False  # as when Redis goes away
            not_ready = await client.get("/readyz")
            assert not_ready.status_code == 503 and not_ready.json()["ok"] is False


async def test_the_dashboard_answers_its_probes_on_its_own_port(make_settings):
    """Its probes share the page's port (a name clash once handed the WebSocket to /livez)."""
    settings = make_settings(dashboard_port=0)
    dashboard = DashboardService(settings, host="127.0.0.1")
    async with running(dashboard, settings=settings) as [runtime]:
        await eventually(lambda: _ready(runtime), what="dashboard ready")
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{dashboard.port}") as client:
            live, ready = await client.get("/livez"), await client.get("/readyz")
    assert live.status_code == 200 and live.json()["ok"] is True
    assert ready.status_code == 200 and ready.json()["ok"] is True


async def test_sigterm_stops_a_service_gracefully(redis_url, redis):
    process = service_process("strategy", {"REDIS_URL": redis_url, "LOG_FORMAT": "json"})

    async def running_heartbeat() -> bool:
        raw = await redis.get(heartbeat_key("strategy"))
        return raw is not None and orjson.loads(raw)["status"] == "running"

    try:
        await eventually(running_heartbeat, within=60, what="the strategy's heartbeat")
    finally:
        assert stop_process(process, signal.SIGTERM) == 0
    final = orjson.loads(await redis.get(heartbeat_key("strategy")))
    assert final["status"] == "stopped"
    assert final["pid"] == process.pid


async def _ready(runtime) -> bool:
    return runtime.readiness()[0]
