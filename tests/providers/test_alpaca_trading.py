"""Execution at Alpaca through alpaca-py, against a local server speaking Alpaca's trading API:
orders, fills, partial fills, rejections, cancels and expiries booked into the simulator's streams
and tables; one order per signal across a crash; fills missed by a dropped stream recovered from
REST; positions after a restart equal Alpaca's; refused keys and rate limits."""

from __future__ import annotations

from datetime import UTC, datetime

import asyncpg
import orjson
import pytest
from alpaca.trading.client import TradingClient
from alpaca.trading.enums import OrderSide, TimeInForce
from alpaca.trading.requests import MarketOrderRequest

from support.services import eventually, running
from tradebot.common import bus, keys, wire
from tradebot.common.models import Fill, Order, Position, Side, TradeSignal
from tradebot.execution.book import Book, intended
from tradebot.execution.broker_service import AlpacaExecutionService
from tradebot.execution.portfolio import PendingOrder, Portfolio
from tradebot.execution.venue import OrderIntent
from tradebot.storage.service import StorageService

from .conftest import trading_settings
from .fakes.alpaca_trading import FakeAlpacaTrading

pytestmark = pytest.mark.integration
NOW = datetime.now(UTC)
SIMPLE = {"stop_loss_pct": 0, "stop_loss_atr": 0, "take_profit_pct": 0}  # plain orders, no bracket


def signal(n: int, symbol: str = "AAPL", side: Side = Side.BUY, price: float = 100.0) -> TradeSignal:
    return TradeSignal(
        id=f"sma_crossover:alpaca:{symbol}:1m:{1_767_623_400 + n}", time=NOW, strategy="sma_crossover",
        symbol=symbol, side=side, strength=1.0, reason="test", price=price, source="alpaca",
        tick_id=f"t{n}", tick_time=NOW,
    )  # fmt: skip


def settings_for(make_settings, fake: FakeAlpacaTrading, **overrides):
    values = {"sizing": "quantity", "order_quantity": 10, "min_signal_strength": 0, "cooldown_seconds": 0,
              "provider_auth_retry": 60, **SIMPLE, **overrides}  # fmt: skip
    return make_settings(**trading_settings(fake, **values))


async def publish(redis, *signals: TradeSignal) -> None:
    await bus.Publisher(redis, 10_000).publish(keys.SIGNALS, [(s, None) for s in signals])


async def records(redis, stream: str) -> list:
    return [wire.decode(fields) for _, fields in await redis.xrange(stream)]


async def portfolio(redis) -> Portfolio:
    return Portfolio.model_validate_json(await redis.get(keys.PORTFOLIO))


async def _true(value: bool) -> bool:
    return value


async def running_and_reconciled(runtime) -> None:
    await eventually(lambda: _true(runtime.ctx.ready), what="reconciled with Alpaca and ready")


async def test_submit_and_fill_into_the_streams_and_tables(make_settings, redis, database_url, fake_trading):
    settings = settings_for(make_settings, fake_trading, take_profit_pct=4, stop_loss_pct=2)
    async with running(StorageService(settings), AlpacaExecutionService(settings), settings=settings) as [
        _,
        execution,
    ]:
        await running_and_reconciled(execution)
        await publish(redis, signal(1), signal(1))  # published twice: one order
        await eventually(lambda: _true(execution.ctx.counters["orders_filled"] == 1), what="the order filled")
        placed = fake_trading.order(signal(1).id)
        assert placed["order_class"] == "bracket" and float(placed["filled_qty"]) == 10
        legs = {leg["type"]: leg for leg in placed["legs"]}
        assert float(legs["limit"]["limit_price"]) == 104.0 and float(legs["stop"]["stop_price"]) == 98.0
        await eventually(lambda: _true(execution.ctx.counters["duplicate_signals"] == 1), what="the repeat")

        [order] = await records(redis, keys.ORDERS)
        [fill] = await records(redis, keys.FILLS)
        [position] = await records(redis, keys.POSITIONS)
        assert isinstance(order, Order) and order.status == "filled" and order.quantity == 10
        assert order.signal_id == signal(1).id and order.strategy == "sma_crossover"
        assert isinstance(fill, Fill) and (fill.quantity, fill.price, fill.order_id) == (10, 100.0, order.id)
        assert isinstance(position, Position) and position.quantity == 10
        held = (await portfolio(redis)).holdings["AAPL"]
        assert (held.stop_price, held.take_profit_price, held.strategy) == (98.0, 104.0, "sma_crossover")

        fake_trading.fill(fake_trading.leg(signal(1).id, "limit"), price=104.0)  # the take-profit leg
        await eventually(lambda: _true(execution.ctx.counters["orders_filled"] == 2), what="the exit filled")
        orders = await records(redis, keys.ORDERS)
        assert [(o.signal_id, o.side, o.quantity) for o in orders][1] == (f"exit:{signal(1).id}", "sell", 10)
        assert "take-profit" in orders[1].reason
        assert (await portfolio(redis)).quantity("AAPL") == 0
        assert fake_trading.order(fake_trading.leg(signal(1).id, "stop"))["status"] == "canceled"

        conn = await asyncpg.connect(database_url)
        try:

            async def stored() -> bool:
                counts = [await conn.fetchval(f"SELECT count(*) FROM {t}") for t in ("orders", "fills")]
                return counts == [2, 2]

            await eventually(stored, what="orders and fills in PostgreSQL")
            assert await conn.fetchval("SELECT quantity FROM positions WHERE symbol = 'AAPL'") == 0
        finally:
            await conn.close()


@pytest.mark.parametrize("fake_trading", [{"auto_fill": False}], indirect=True)
async def test_partial_fills_then_the_rest(make_settings, redis, fake_trading):
    settings = settings_for(make_settings, fake_trading)
    async with running(AlpacaExecutionService(settings), settings=settings) as [execution]:
        await running_and_reconciled(execution)
        await publish(redis, signal(1))
        await eventually(lambda: _true(fake_trading.placed(signal(1).id) == 1), what="the order at Alpaca")
        fake_trading.fill(signal(1).id, 4, 100.0)
        await eventually(lambda: _true(execution.ctx.counters["fills"] == 1), what="the partial fill")
        assert await records(redis, keys.ORDERS) == []  # an order is recorded once, when it is final
        assert (await portfolio(redis)).quantity("AAPL") == 4
        fake_trading.fill(signal(1).id, 6, 101.0)
        await eventually(lambda: _true(execution.ctx.counters["orders_filled"] == 1), what="the rest")
        fills = await records(redis, keys.FILLS)
        assert [(f.quantity, f.price) for f in fills] == [(4, 100.0), (6, 101.0)]
        assert len({f.id for f in fills}) == 2
        [order] = await records(redis, keys.ORDERS)
        assert (order.status, order.quantity) == ("filled", 10)
        assert (await portfolio(redis)).holdings["AAPL"].average_price == pytest.approx(100.6)


@pytest.mark.parametrize("fake_trading", [{"auto_fill": False}], indirect=True)
async def test_rejected_canceled_and_expired_orders(make_settings, redis, fake_trading):
    settings = settings_for(make_settings, fake_trading, take_profit_pct=4)
    async with running(AlpacaExecutionService(settings), settings=settings) as [execution]:
        await running_and_reconciled(execution)
        fake_trading.prices["MSFT"] = 110.0  # the market moved past the take-profit: Alpaca refuses it
        await publish(redis, signal(1, "MSFT"))
        await eventually(lambda: _true(execution.ctx.counters["orders_rejected"] == 1), what="the refusal")
        [refused] = await records(redis, keys.ORDERS)
        assert refused.status == "rejected" and "HTTP 422" in refused.reason
        assert "take_profit.limit_price must be >= base_price" in refused.reason

        await publish(redis, signal(2, "AAPL"))
        await eventually(lambda: _true(fake_trading.placed(signal(2).id) == 1), what="the order at Alpaca")
        fake_trading.end(signal(2).id, "rejected")
        await eventually(lambda: _true(execution.ctx.counters["orders_rejected"] == 2), what="rejected")

        await publish(redis, signal(3, "AAPL"))
        await eventually(lambda: _true(fake_trading.placed(signal(3).id) == 1), what="the order at Alpaca")
        fake_trading.fill(signal(3).id, 4, 100.0)
        await eventually(lambda: _true(execution.ctx.counters["fills"] == 1), what="the partial fill")
        fake_trading.end(signal(3).id, "canceled")
        await eventually(lambda: _true(execution.ctx.counters["orders_canceled"] == 1), what="canceled")

        await publish(redis, signal(4, "MSFT", price=110.0))
        await eventually(lambda: _true(fake_trading.placed(signal(4, "MSFT").id) == 1), what="MSFT order")
        fake_trading.end(signal(4, "MSFT").id, "expired")
        await eventually(lambda: _true(execution.ctx.counters["orders_expired"] == 1), what="expired")

        orders = {o.signal_id: o for o in await records(redis, keys.ORDERS)}
        assert (orders[signal(2).id].status, orders[signal(2).id].quantity) == ("rejected", 0)
        canceled = orders[signal(3).id]
        assert (canceled.status, canceled.quantity) == ("canceled", 4)
        assert "after 4 of 10 filled" in canceled.reason
        assert orders[signal(4, "MSFT").id].status == "expired"
        account = await portfolio(redis)
        assert account.quantity("AAPL") == 4 and account.quantity("MSFT") == 0
        assert account.orders_rejected == 2


async def test_a_signal_redelivered_after_a_crash_places_one_order(make_settings, redis, fake_trading):
    """The crashed process had written its intent and placed the order, but never acknowledged the
    signal: the restarted one books Alpaca's fill as the signal's, and its retry finds the order."""
    settings = settings_for(make_settings, fake_trading, claim_idle_seconds=0.5)
    await redis.xgroup_create(keys.SIGNALS, "execution", id="0", mkstream=True)
    await publish(redis, signal(1))
    taken = await redis.xreadgroup("execution", "execution-crashed-pod", {keys.SIGNALS: ">"}, count=10)
    assert len(taken[0][1]) == 1
    meant = intended(PendingOrder.of(signal(1)), OrderIntent(signal(1).id, "AAPL", Side.BUY, 10), 100.0)
    await redis.set(keys.BROKER_BOOK, Book(last_fill=datetime.now(UTC)).model_dump_json())
    await redis.hset(keys.BROKER_SUBMITTING, signal(1).id, meant.model_dump_json())
    sdk = TradingClient(fake_trading.key, fake_trading.secret, url_override=fake_trading.rest_url)
    placed = MarketOrderRequest(
        symbol="AAPL", qty=10, side=OrderSide.BUY, time_in_force=TimeInForce.DAY, client_order_id=signal(1).id
    )
    sdk.submit_order(placed)

    async with running(AlpacaExecutionService(settings), settings=settings) as [execution]:

        async def handled() -> bool:
            pending = await redis.xpending(keys.SIGNALS, "execution")
            return pending["pending"] == 0 and execution.ctx.ready

        await eventually(handled, what="the redelivered signal handled")
        assert fake_trading.placed(signal(1).id) == 1
        assert fake_trading.posts.count(signal(1).id) == 2  # tried again; Alpaca refused a second order
        assert execution.ctx.counters["alpaca_duplicate_submits"] == 1
        [order] = await records(redis, keys.ORDERS)
        [fill] = await records(redis, keys.FILLS)
        assert (order.signal_id, order.strategy, order.status) == (signal(1).id, "sma_crossover", "filled")
        assert fill.quantity == 10
        held = (await portfolio(redis)).holdings["AAPL"]
        assert (held.quantity, held.strategy) == (10, "sma_crossover")
        assert await redis.hlen(keys.BROKER_SUBMITTING) == 0


@pytest.mark.parametrize("fake_trading", [{"auto_fill": False}], indirect=True)
async def test_fills_missed_while_trade_updates_was_down_come_from_rest(make_settings, redis, fake_trading):
    settings = settings_for(make_settings, fake_trading)
    async with running(AlpacaExecutionService(settings), settings=settings) as [execution]:
        await running_and_reconciled(execution)
        await publish(redis, signal(1), signal(2, "MSFT"))
        await eventually(lambda: _true(execution.ctx.counters["orders_submitted"] == 2), what="two orders")
        fake_trading.set_stream_down(True)
        assert fake_trading.drop_connections() == 1
        await eventually(lambda: _true(not execution.ctx.ready), what="the drop noticed")
        fake_trading.fill(signal(1).id, 10, 100.5)  # nobody hears these
        fake_trading.fill(signal(2, "MSFT").id, 3, 99.0)
        assert execution.ctx.counters["fills"] == 0
        fake_trading.set_stream_down(False)
        recovered = execution.ctx.counters
        await eventually(lambda: _true(recovered["fills_recovered"] == 2), what="fills from REST")
        assert execution.ctx.counters["reconnects"] >= 1 and execution.ctx.counters["reconciliations"] >= 2
        fake_trading.fill(signal(2, "MSFT").id, 7, 99.5)  # and the stream carries on
        await eventually(lambda: _true(execution.ctx.counters["orders_filled"] == 2), what="both filled")
        fills = await records(redis, keys.FILLS)
        assert sorted((f.symbol, f.quantity, f.price) for f in fills) == [
            ("AAPL", 10, 100.5), ("MSFT", 3, 99.0), ("MSFT", 7, 99.5)]  # fmt: skip
        account = await portfolio(redis)
        assert account.quantity("AAPL") == 10 and account.quantity("MSFT") == 10


async def test_positions_after_a_restart_equal_alpacas(make_settings, redis, fake_trading):
    settings = settings_for(make_settings, fake_trading)
    async with running(AlpacaExecutionService(settings), settings=settings) as [execution]:
        await running_and_reconciled(execution)
        await publish(redis, signal(1))
        await eventually(lambda: _true(execution.ctx.counters["orders_filled"] == 1), what="the fill")
        assert "matches the broker" in execution.ctx.status_message
    fake_trading.set_position("AAPL", 12, 100.0)  # traded by hand on Alpaca while we were stopped
    fake_trading.set_position("MSFT", 5, 50.0)
    async with running(AlpacaExecutionService(settings), settings=settings) as [execution]:
        await running_and_reconciled(execution)
        account = await portfolio(redis)
        assert {s: (h.quantity, h.average_price) for s, h in account.open_positions().items()} == {
            "AAPL": (12, 100.0), "MSFT": (5, 50.0)}  # fmt: skip
        message = execution.ctx.status_message
        assert "AAPL 10 @ 100 -> 12 @ 100" in message and "MSFT 0 @ 0 -> 5 @ 50" in message
        assert execution.ctx.counters["reconcile_differences"] >= 2
        positions = [p for p in await records(redis, keys.POSITIONS) if isinstance(p, Position)]
        assert [(p.symbol, p.quantity) for p in positions][-2:] == [("AAPL", 12), ("MSFT", 5)]
        beat = orjson.loads(await redis.get(keys.heartbeat_key("execution")) or b"{}")

        async def shown() -> bool:
            beat.update(orjson.loads(await redis.get(keys.heartbeat_key("execution")) or b"{}"))
            return "MSFT 0 @ 0 -> 5 @ 50" in (beat.get("message") or "")

        await eventually(shown, what="the differences in the heartbeat")


async def test_rejected_and_missing_keys_are_an_error_state(make_settings, redis, fake_trading):
    settings = settings_for(make_settings, fake_trading, alpaca_secret="wrong")
    async with running(AlpacaExecutionService(settings), settings=settings) as [execution]:
        await eventually(lambda: _true(execution.ctx.status == "error"), what="the error state")
        message = execution.ctx.status_message
        assert "ALPACA_KEY/ALPACA_SECRET" in message and "request is not authorized" in message
        assert "401" in message
        assert int(await redis.get(keys.errors_key("execution"))) == 1
    settings = settings_for(make_settings, fake_trading, alpaca_key=None)
    async with running(AlpacaExecutionService(settings), settings=settings) as [execution]:
        await eventually(lambda: _true(execution.ctx.status == "error"), what="the error state")
        assert "ALPACA_KEY not set: EXECUTION_VENUE=alpaca needs" in execution.ctx.status_message


async def test_rate_limits_are_waited_out(make_settings, redis, fake_trading):
    fake_trading.storm(3)  # the next three requests answer 429 with Retry-After
    settings = settings_for(make_settings, fake_trading)
    async with running(AlpacaExecutionService(settings), settings=settings) as [execution]:
        await running_and_reconciled(execution)
        assert execution.ctx.counters["alpaca_rate_limited"] == 3
        assert fake_trading.limit.refused == 3
        await publish(redis, signal(1))
        await eventually(lambda: _true(execution.ctx.counters["orders_filled"] == 1), what="the fill")


async def test_a_sell_signal_cancels_the_bracket_legs_then_sells(make_settings, redis, fake_trading):
    settings = settings_for(make_settings, fake_trading, take_profit_pct=4, stop_loss_pct=2)
    async with running(AlpacaExecutionService(settings), settings=settings) as [execution]:
        await running_and_reconciled(execution)
        await publish(redis, signal(1))
        await eventually(lambda: _true(execution.ctx.counters["orders_filled"] == 1), what="the entry")
        fake_trading.prices["AAPL"] = 102.0
        await publish(redis, signal(2, side=Side.SELL, price=102.0))
        await eventually(lambda: _true(execution.ctx.counters["orders_filled"] == 2), what="the sale")
        for leg in ("limit", "stop"):
            assert fake_trading.order(fake_trading.leg(signal(1).id, leg))["status"] == "canceled"
        orders = await records(redis, keys.ORDERS)
        assert [(o.signal_id, o.side, o.status) for o in orders] == [
            (signal(1).id, "buy", "filled"), (signal(2).id, "sell", "filled")]  # fmt: skip
        account = await portfolio(redis)
        assert account.quantity("AAPL") == 0 and account.realized_pnl == pytest.approx(20.0)


@pytest.mark.parametrize("fake_trading", [{"auto_fill": False}], indirect=True)
async def test_limit_orders_at_the_offset_past_the_price(make_settings, redis, fake_trading):
    settings = settings_for(
        make_settings, fake_trading, alpaca_order_type="limit", alpaca_limit_offset_bps=25
    )
    async with running(AlpacaExecutionService(settings), settings=settings) as [execution]:
        await running_and_reconciled(execution)
        await publish(redis, signal(1))
        await eventually(lambda: _true(fake_trading.placed(signal(1).id) == 1), what="the order at Alpaca")
        placed = fake_trading.order(signal(1).id)
        assert (placed["type"], float(placed["limit_price"])) == ("limit", 100.25)
        fake_trading.fill(signal(1).id, price=100.2)
        await eventually(lambda: _true(execution.ctx.counters["orders_filled"] == 1), what="the fill")
        [fill] = await records(redis, keys.FILLS)
        assert (fill.price, fill.slippage) == (100.2, pytest.approx(2.0))
