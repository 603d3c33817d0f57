"""The account and service health, read from Redis as the running services leave them."""

from __future__ import annotations

import time

import orjson
import pytest

from tradebot.common import keys
from tradebot.common.keys import errors_key, heartbeat_key
from tradebot.execution.portfolio import Holding, Portfolio

pytestmark = [pytest.mark.integration, pytest.mark.backends]


async def beat(redis, service_id: str, age: float) -> None:
    payload = {"service": service_id, "status": "running", "timestamp": time.time() - age, "counters": {}}
    await redis.set(heartbeat_key(service_id), orjson.dumps(payload))


async def test_a_fresh_account_has_the_starting_cash(client):
    account = (await client.get("/account")).json()
    assert account["cash"] == account["equity"] == 100_000
    assert account["positions"] == [] and account["total_pnl"] == 0


async def test_the_account_is_marked_to_the_latest_prices(client, redis):
    portfolio = Portfolio(
        cash=98_899.0,
        holdings={"AAPL": Holding(quantity=10, average_price=110.0, realized_pnl=-1.0, market_price=110.0)},
        realized_pnl=-1.0,
        fees_paid=1.0,
        orders_filled=1,
    )
    await redis.set(keys.PORTFOLIO, portfolio.model_dump_json())
    await redis.hset(keys.LATEST_PRICES, "AAPL", orjson.dumps({"symbol": "AAPL", "price": 120.0}))
    account = (await client.get("/account")).json()
    assert account["equity"] == pytest.approx(98_899.0 + 1_200.0)
    assert account["unrealized_pnl"] == pytest.approx(100.0)
    assert account["total_pnl"] == pytest.approx(99.0)
    [position] = account["positions"]
    assert position["symbol"] == "AAPL" and position["market_price"] == 120.0


async def test_services_are_found_by_heartbeat_with_their_states(client, redis):
    await beat(redis, "market_data", age=1)
    await beat(redis, "strategy", age=45)
    await beat(redis, "execution", age=90)
    await beat(redis, "polygon_market_data", age=400)
    await beat(redis, "storage", age=1)
    await redis.incrby(errors_key("storage"), 3)
    services = {s["service"]: s for s in (await client.get("/services")).json()}
    assert {k: s["state"] for k, s in services.items()} == {
        "market_data": "healthy", "strategy": "degraded", "execution": "unhealthy",
        "polygon_market_data": "dead", "storage": "error",
    }  # fmt: skip
    assert services["polygon_market_data"]["name"] == "polygon market data"
    assert [k for k, s in services.items() if s["active_market_data"]] == ["market_data"]
    assert services["storage"]["error_count"] == 3


async def test_an_error_count_is_reset(client, redis):
    await beat(redis, "storage", age=1)
    await redis.incrby(errors_key("storage"), 2)
    assert (await client.delete("/services/storage/errors")).status_code == 204
    [storage] = (await client.get("/services")).json()
    assert (storage["state"], storage["error_count"]) == ("healthy", 0)
    missing = await client.delete("/services/nonexistent/errors")
    assert missing.status_code == 404
    assert missing.json()["detail"] == "unknown service 'nonexistent'"
