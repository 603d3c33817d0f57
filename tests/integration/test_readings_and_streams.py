"""A running strategy publishes its parameters and each symbol's indicators; the API serves them,
and says per stream how long it is and how far behind each consumer group reads."""

from __future__ import annotations

import pytest

from support.services import eventually, running
from support.trading import api_client
from tradebot.common import keys
from tradebot.market_data.service import SyntheticMarketDataService
from tradebot.strategy.service import StrategyService

pytestmark = pytest.mark.integration


async def test_readings_strategies_and_stream_health_are_served(make_settings, redis):
    settings = make_settings(
        symbols="AAPL,MSFT", ticks_per_second=20,
        strategy_params={"sma_crossover": {"fast": 3, "slow": 8, "input": "trades"}},
    )  # fmt: skip
    services = SyntheticMarketDataService(settings, seed=1), StrategyService(settings)
    async with running(*services, settings=settings), api_client(settings, redis) as api:

        async def warmed_up() -> bool:
            found = (await api.get("/strategies/readings", params={"symbols": "aapl,MSFT"})).json()
            values = [r["strategies"]["sma_crossover"]["values"] for r in found]
            return len(values) == 2 and all(v["slow"] is not None for v in values)

        await eventually(warmed_up, what="both symbols' averages to be published")
        history = (await api.get("/strategies/readings/AAPL/history")).json()
        assert history and history[-1]["strategies"]["sma_crossover"]["slow"] is not None
        strategies = {s["name"]: s for s in (await api.get("/strategies")).json()}
        assert strategies["sma_crossover"]["params"]["fast"] == 3
        assert strategies["sma_crossover"]["overlays"] == ["fast", "slow"]

        # a group that took entries and never acknowledged them shows as pending and behind
        await redis.xgroup_create(keys.TICKS, "stalled", id="0")
        await redis.xreadgroup("stalled", "stalled-1", {keys.TICKS: ">"}, count=5)
        health = {s["stream"]: s for s in (await api.get("/streams")).json()}
        ticks = health[keys.TICKS]
        assert ticks["length"] > 0 and ticks["dead_letters"] == 0
        groups = {g["group"]: g for g in ticks["groups"]}
        assert groups["stalled"]["pending"] == 5 and groups["stalled"]["lag_ms"] >= 0
        assert groups["strategy"]["consumers"] == 1
        assert health[keys.CONTROLS]["length"] == 0 and health[keys.CONTROLS]["groups"] == []
