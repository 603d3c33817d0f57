"""Operator controls through the pipeline: the API audits and publishes them, execution applies each
once: pause stops entries while exits still fill, close and flatten sell at the next trade, reset
restores the starting cash. Real Redis, PostgreSQL, execution service and API app."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any, cast

import httpx
import pytest

from support.services import eventually, running
from support.trading import START, api_client, portfolio, signal, trade
from tradebot.common import bus, keys, wire
from tradebot.common.models import Control, Order
from tradebot.execution.portfolio import Portfolio
from tradebot.execution.service import ExecutionService

pytestmark = pytest.mark.integration
NO_TOKEN = {"Authorization": ""}


async def orders(redis) -> list[Order]:
    return [cast(Order, wire.decode(fields)) for _, fields in await redis.xrange(keys.ORDERS)]


@pytest.fixture
async def api(make_settings, redis) -> AsyncIterator[httpx.AsyncClient]:
    async with api_client(make_settings(), redis) as http:
        yield http


async def test_each_control_acts_through_execution_and_is_audited(make_settings, redis, api):
    settings = make_settings(sizing="quantity", order_quantity=10, stop_loss_pct=5, cooldown_seconds=0)
    publisher = bus.Publisher(redis, settings.stream_maxlen)
    async with running(ExecutionService(settings), settings=settings) as [runtime]:
        counters = runtime.ctx.counters

        async def filled(n: int) -> bool:
            return counters["orders_filled"] >= n

        await publisher.publish(keys.SIGNALS, [(signal(1, "AAPL"), None), (signal(2, "MSFT"), None)])
        await trade(redis, publisher, "AAPL", 100.0)
        await trade(redis, publisher, "MSFT", 200.0)
        await eventually(lambda: filled(2), what="both entries to fill")

        # pause: a new entry is refused, while a stop-loss exit still fills
        answer = await api.post("/controls/pause", json={"reason": "news"})
        assert answer.status_code == 202, answer.text
        await eventually(lambda: _is(portfolio(redis), paused=True), what="the pause to apply")
        await publisher.publish(keys.SIGNALS, [(signal(3, "TSLA"), None)])
        await trade(redis, publisher, "TSLA", 300.0)
        await trade(redis, publisher, "MSFT", 180.0)  # below MSFT's 5% stop
        await eventually(lambda: filled(3), what="the MSFT stop-loss to fill while paused")
        rejected = [o for o in await orders(redis) if o.symbol == "TSLA"]
        assert [o.status for o in rejected] == ["rejected"] and "paused" in rejected[0].reason
        account = (await api.get("/account")).json()
        assert account["paused"] is True

        # resume, then close one position: it sells at AAPL's next trade with the operator's reason
        assert (await api.post("/controls/resume")).status_code == 202
        await eventually(lambda: _is(portfolio(redis), paused=False), what="the resume to apply")
        assert (await api.post("/controls/close/msft")).status_code == 404  # flat already
        assert (await api.post("/controls/close/aapl")).status_code == 202
        await eventually(lambda: _has_pending(redis, "AAPL"), what="the close to queue a sell")
        await trade(redis, publisher, "AAPL", 101.0)
        await eventually(lambda: filled(4), what="the close to fill")
        close = [o for o in await orders(redis) if o.signal_id.startswith("control:")]
        assert close[0].side == "sell" and close[0].reason.startswith("closed by operator by token@")

        # flatten: two new positions, both sold at their next trades, nothing left
        await publisher.publish(keys.SIGNALS, [(signal(5, "NVDA"), None), (signal(6, "AMZN"), None)])
        await trade(redis, publisher, "NVDA", 50.0)
        await trade(redis, publisher, "AMZN", 60.0)
        await eventually(lambda: filled(6), what="two more entries")
        assert (await api.post("/controls/flatten")).status_code == 202
        await eventually(lambda: _has_pending(redis, "NVDA"), what="the flatten to queue sells")
        await trade(redis, publisher, "NVDA", 51.0)
        await trade(redis, publisher, "AMZN", 61.0)
        await eventually(lambda: filled(8), what="the flatten's sells")
        assert (await portfolio(redis)).open_positions() == {}

        # reset: one more position, then a fresh account with the starting cash
        await publisher.publish(keys.SIGNALS, [(signal(7, "META"), None)])
        await trade(redis, publisher, "META", 70.0)
        await eventually(lambda: filled(9), what="an entry before the reset")
        assert (await api.post("/controls/reset")).status_code == 202
        await eventually(
            lambda: _is(portfolio(redis), cash=settings.starting_cash), what="the reset to apply"
        )
        positions = [wire.decode(f) for _, f in await redis.xrange(keys.POSITIONS)]
        assert positions[-1].symbol == "META" and positions[-1].quantity == 0  # the stored one goes flat

    audit = (await api.get("/audit")).json()
    assert [row["action"] for row in reversed(audit)] == ["pause", "resume", "close", "flatten", "reset"]
    assert audit[-1]["reason"] == "news" and all(row["actor"].startswith("token@") for row in audit)
    assert [row["result"] for row in reversed(audit)] == [
        "trading paused: no new positions, exits still run", "trading resumed",
        "AAPL sells at its next trade",
        "2 positions sell at their next trade; queued buys cancelled",
        f"account reset to {settings.starting_cash:,.2f} cash (1 positions dropped)",
    ]  # fmt: skip
    assert all(row["applied_at"] is not None for row in audit)


async def test_a_control_delivered_twice_acts_once(make_settings, redis):
    settings = make_settings(sizing="quantity", order_quantity=10)
    reset = Control(time=START, action="reset", actor="test")
    fields = cast(Any, wire.encode(reset))
    await redis.set(keys.PORTFOLIO, Portfolio(cash=5.0).model_dump_json())
    async with running(ExecutionService(settings), settings=settings) as [runtime]:
        await redis.xadd(keys.CONTROLS, fields)
        await eventually(lambda: _is(portfolio(redis), cash=settings.starting_cash), what="the reset")
        await redis.set(keys.PORTFOLIO, Portfolio(cash=5.0).model_dump_json())  # spent since
        await redis.xadd(keys.CONTROLS, fields)  # the same control again (a replay)

        async def counted() -> bool:
            return runtime.ctx.counters["duplicate_controls"] == 1

        await eventually(counted, what="the replay to be recognised")
        assert runtime.ctx.counters["controls_reset"] == 1
        assert (await portfolio(redis)).cash == 5.0
        pending = await redis.xpending(keys.CONTROLS, "execution")
        assert pending["pending"] == 0


async def test_controls_need_the_token_and_a_valid_body(api):
    assert (await api.post("/controls/pause", headers=NO_TOKEN)).status_code == 401
    wrong = {"Authorization": "Bearer nope"}
    assert (await api.post("/controls/flatten", headers=wrong)).status_code == 401
    too_long = await api.post("/controls/pause", json={"reason": "x" * 501})
    assert too_long.status_code == 422 and "reason" in too_long.text
    bad_symbol = await api.post("/controls/close/not a ticker")
    assert bad_symbol.status_code == 422
    assert (await api.get("/audit")).json() == []


async def _is(found, **expected) -> bool:
    account = await found
    return all(getattr(account, name) == value for name, value in expected.items())


async def _has_pending(redis, symbol: str) -> bool:
    return bool((await portfolio(redis)).pending.get(symbol))
