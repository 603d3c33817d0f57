"""Notifications to a local webhook: what they say (Slack and Discord fields), retries, the rate
limit, and that a dead webhook never holds up the pipeline or the dashboard."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest

from support.services import eventually, running
from support.trading import signal, trade
from support.webhook import webhook_receiver
from tradebot.common import bus, keys
from tradebot.common.keys import errors_key, heartbeat_key
from tradebot.common.models import Fill, Order, OrderStatus, Side
from tradebot.dashboard.service import DashboardService
from tradebot.execution.service import ExecutionService
from tradebot.notify.messages import DailySummary, ErrorWatch, describe
from tradebot.notify.webhook import RateLimit, WebhookNotifier

pytestmark = pytest.mark.integration
NOW = datetime(2026, 1, 5, 15, 30, tzinfo=UTC)


def fill() -> Fill:
    return Fill(id="fill:a", order_id="order:a", time=NOW, symbol="AAPL", side=Side.BUY, quantity=10,
                price=187.25, fee=1.0, slippage=0.09)  # fmt: skip


def order(reason: str) -> Order:
    return Order(id="order:b", signal_id="b", time=NOW, strategy="sma_crossover", symbol="MSFT",
                 side=Side.BUY, quantity=0, reference_price=400.0, status=OrderStatus.REJECTED,
                 reason=reason)  # fmt: skip


def test_what_is_worth_saying():
    assert describe(fill()) == "Bought 10 AAPL @ 187.2 (fee $1.00, 2026-01-05 15:30:00 UTC)"
    assert describe(order("max open positions 20 reached")) == (
        "Risk rejection: buy MSFT (sma_crossover): max open positions 20 reached"
    )
    assert describe(order("no MSFT position to sell (long-only account)")) is None
    watch = ErrorWatch()
    storage = {"service": "storage", "name": "storage", "error_count": 1, "last_error": "refused a row"}
    assert watch.news([storage]) == []  # in error already when first seen: its card says so
    assert watch.news([{**storage, "error_count": 3}]) == [
        "Service error in storage (3 so far): refused a row"
    ]
    summary = DailySummary()
    account = {"equity": 101_000.0, "total_pnl": 1_000.0, "realized_pnl": 900.0, "fees_paid": 12.0,
               "positions": [{}], "paused": False}  # fmt: skip
    assert summary.due(NOW, account) is None
    summary.count(fill())
    assert summary.due(NOW + timedelta(hours=1), account) is None
    text = summary.due(NOW + timedelta(days=1), account)
    assert text == (
        "Daily summary 2026-01-05: equity $101,000.00, total P&L $1,000.00 (realised $900.00, fees $12.00),"
        " 1 fills, 1 open positions"
    )
    clock = [0.0]
    limit = RateLimit(2, clock=lambda: clock[0])
    assert [limit.take() for _ in range(3)] == [True, True, False]
    clock[0] = 30.0  # half a minute refills one
    assert [limit.take(), limit.take()] == [True, False]


async def test_posts_are_retried_then_delivered_with_slack_and_discord_fields():
    async with webhook_receiver() as hook:
        hook.statuses = [503, 429]
        notifier = WebhookNotifier(hook.url, per_minute=10)
        sending = asyncio.create_task(notifier.run())
        notifier.offer("Bought 10 AAPL")

        async def delivered() -> bool:
            return notifier.counters["notifications_sent"] == 1

        await eventually(delivered, what="the notification after a 503 and a 429")
        sending.cancel()
    assert hook.attempts == 3
    assert hook.received == [{"username": "TradeBot", "text": "Bought 10 AAPL", "content": "Bought 10 AAPL"}]
    assert notifier.counters["notifications_retried"] == 2 and notifier.counters["notifications_sent"] == 1


async def test_the_rate_limit_drops_and_then_says_how_many():
    async with webhook_receiver() as hook:
        notifier = WebhookNotifier(hook.url, per_minute=3)
        sending = asyncio.create_task(notifier.run())
        for n in range(10):
            notifier.offer(f"fill {n}")
        notifier.limit.tokens = 1  # a refill, without waiting 20 s for it
        notifier.offer("fill 10")

        async def four() -> bool:
            return notifier.counters["notifications_sent"] == 4

        await eventually(four, what="the three allowed and the one after the refill")
        sending.cancel()
    texts = [body["text"] for body in hook.received]
    assert texts[:3] == ["fill 0", "fill 1", "fill 2"]
    assert texts[3] == "fill 10\n(7 more notifications were dropped by the rate limit)"


async def test_the_dashboard_notifies_fills_rejections_and_service_errors(make_settings, redis):
    async with webhook_receiver() as hook:
        settings = make_settings(notify_webhook_url=hook.url, dashboard_port=0, api_url="http://127.0.0.1:9")
        async with running(DashboardService(settings), settings=settings) as [runtime]:
            await eventually(lambda: _ready(runtime), what="the dashboard")
            publisher = bus.Publisher(redis, settings.stream_maxlen)
            await publisher.publish(keys.FILLS, [(fill(), None)])
            await publisher.publish(
                keys.ORDERS, [(order("order notional 60000 over MAX_ORDER_NOTIONAL"), None)]
            )
            beat = b'{"service": "storage", "status": "running", "timestamp": %f, "counters": {},' % (
                datetime.now(UTC).timestamp()
            )
            await redis.set(
                heartbeat_key("storage"), beat + b' "last_error": {"reason": "disk full", "time": 1}}'
            )
            await asyncio.sleep(0)  # the dashboard sees storage without errors first

            async def seen_storage() -> bool:
                return "storage" in runtime.service.errors.counts

            await eventually(seen_storage, what="the dashboard to see storage")
            await redis.incrby(errors_key("storage"), 1)

            async def all_three() -> bool:
                return len(hook.received) >= 3

            await eventually(all_three, what="three notifications")
    texts = sorted(body["text"] for body in hook.received)
    assert texts[0].startswith("Bought 10 AAPL @ 187.2")
    assert (
        texts[1] == "Risk rejection: buy MSFT (sma_crossover): order notional 60000 over MAX_ORDER_NOTIONAL"
    )
    assert texts[2] == "Service error in storage (1 so far): disk full"


async def test_a_dead_webhook_never_holds_up_execution_or_the_dashboard(make_settings, redis):
    async with webhook_receiver(hang=True) as hook:
        settings = make_settings(
            notify_webhook_url=hook.url, dashboard_port=0, api_url="http://127.0.0.1:9", sizing="quantity",
            order_quantity=1, cooldown_seconds=0, min_signal_strength=0,
        )  # fmt: skip
        dashboard, execution = DashboardService(settings), ExecutionService(settings)
        async with running(dashboard, execution, settings=settings) as [shown, executed]:
            await eventually(lambda: _ready(shown), what="the dashboard")
            publisher = bus.Publisher(redis, settings.stream_maxlen)
            symbols = ["AAPL", "MSFT", "TSLA", "NVDA", "AMZN", "META"]
            await publisher.publish(keys.SIGNALS, [(signal(100 + n, s), None) for n, s in enumerate(symbols)])
            for symbol in symbols:
                await trade(redis, publisher, symbol, 50.0)

            async def all_filled_and_queued() -> bool:
                notifier = dashboard.notifier
                assert notifier is not None
                return executed.ctx.counters["orders_filled"] == 6 and notifier.queue.qsize() >= 5

            await eventually(all_filled_and_queued, what="every fill while the webhook hangs")
            assert hook.attempts == 1 and hook.received == []  # the one post in flight, still unanswered
            assert shown.ctx.ready


async def _ready(runtime) -> bool:
    return runtime.ctx.ready
