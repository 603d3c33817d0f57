"""Closed trades and per-group performance from orders and fills, and equity snapshot times."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from tradebot.common.models import Fill, Order, OrderStatus, Side
from tradebot.execution.trades import closed_trades, exit_reason, performance_by
from tradebot.storage.equity import next_snapshot, snapshot_time

T0 = datetime(2026, 1, 5, 15, 0, tzinfo=UTC)


def pair(n: int, symbol: str, side: Side, price: float, strategy: str = "sma", reason: str = ""):
    key = f"s{n}"
    order = Order(
        id=f"order:{key}", signal_id=key, time=T0 + timedelta(minutes=n), strategy=strategy, symbol=symbol,
        side=side, quantity=10, reference_price=price, status=OrderStatus.FILLED, reason=reason,
    )  # fmt: skip
    fill = Fill(
        id=f"fill:{key}", order_id=order.id, time=T0 + timedelta(minutes=n), symbol=symbol, side=side,
        quantity=10, price=price, fee=1.0, slippage=0.0,
    )  # fmt: skip
    return order, fill


def test_round_trips_pair_each_sell_with_the_buy_that_opened_it():
    fills = [
        pair(1, "AAPL", Side.BUY, 100.0),
        pair(2, "MSFT", Side.BUY, 50.0, strategy="rsi"),
        pair(3, "AAPL", Side.SELL, 110.0),
        pair(4, "MSFT", Side.SELL, 45.0, reason="stop-loss: trade 45 at or below stop 46"),
        pair(5, "TSLA", Side.SELL, 10.0),  # a sell without its buy (before the history) pairs nothing
        pair(6, "NVDA", Side.BUY, 20.0),  # abandoned by an account reset: the next buy replaces it
        pair(7, "NVDA", Side.BUY, 30.0),
        pair(8, "NVDA", Side.SELL, 33.0, reason="flattened by operator by token@127.0.0.1"),
    ]
    trades = closed_trades(fills)
    assert [(t.symbol, t.strategy, t.pnl, t.fees, t.exit_reason) for t in trades] == [
        ("AAPL", "sma", 98.0, 2.0, "sell signal"),
        ("MSFT", "rsi", -52.0, 2.0, "stop-loss"),
        ("NVDA", "sma", 28.0, 2.0, "flattened by operator"),
    ]
    assert trades[2].entry_price == 30.0
    by_strategy = performance_by(trades, lambda t: t.strategy)
    assert [(p.name, p.trades, p.wins, p.win_rate_pct, p.pnl, p.fees) for p in by_strategy] == [
        ("sma", 2, 2, 100.0, 126.0, 4.0),
        ("rsi", 1, 0, 0.0, -52.0, 2.0),
    ]
    assert by_strategy[0].profit_factor is None and by_strategy[1].profit_factor == 0.0


def test_exit_reasons_name_what_closed_the_position():
    order, _ = pair(1, "AAPL", Side.SELL, 1.0, reason="closed by operator by token@10.0.0.1")
    assert exit_reason(order) == "closed by operator"
    order, _ = pair(1, "AAPL", Side.SELL, 1.0, reason="trailing-stop: trade 9 below 9.5")
    assert exit_reason(order) == "trailing-stop"


def test_snapshots_fall_on_interval_starts():
    now = datetime(2026, 1, 5, 15, 0, 42, tzinfo=UTC).timestamp()
    assert snapshot_time(now, 60) == datetime(2026, 1, 5, 15, 0, tzinfo=UTC)
    assert next_snapshot(now, 60) == datetime(2026, 1, 5, 15, 1, tzinfo=UTC).timestamp()
