"""Paper fills, costs, P&L and every risk limit — pure, no Redis."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from tradebot.common.models import OrderStatus, Side, TradeSignal
from tradebot.execution.paper import TradingCosts, execute_signal
from tradebot.execution.portfolio import Portfolio
from tradebot.execution.risk import RiskLimits

NOW = datetime(2026, 1, 5, 15, 0, tzinfo=UTC)
COSTS = TradingCosts(slippage_bps=10, fee_per_share=0.01, min_fee=1.0)
LIMITS = RiskLimits(max_position_per_symbol=100, max_order_notional=10_000, max_open_positions=2,
                    daily_loss_limit=500)  # fmt: skip


def signal(side=Side.BUY, price=100.0, symbol="AAPL", strength=1.0, n=1) -> TradeSignal:
    return TradeSignal(
        id=f"sig{n}", time=NOW, strategy="test", symbol=symbol, side=side, strength=strength,
        reason="test", price=price, source="synthetic", tick_id=f"t{n}", tick_time=NOW,
    )  # fmt: skip


def run(portfolio, sig, quantity=10, limits=LIMITS, now=NOW):
    return execute_signal(portfolio, sig, quantity, limits, COSTS, now)


def test_buy_then_sell_books_slippage_fees_and_pnl():
    portfolio = Portfolio.opening(100_000)
    bought = run(portfolio, signal(Side.BUY, 100.0))
    assert bought.order.status is OrderStatus.FILLED
    assert bought.fill.price == pytest.approx(100.1)  # 10 bp slippage against us
    assert bought.fill.fee == 1.0  # min fee
    assert portfolio.cash == pytest.approx(100_000 - 1001 - 1)
    assert bought.position.quantity == 10
    sold = run(portfolio, signal(Side.SELL, 110.0, n=2))
    assert sold.fill.price == pytest.approx(109.89)
    assert portfolio.realized_pnl == pytest.approx((109.89 - 100.1) * 10 - 2.0)
    assert sold.position.quantity == 0
    assert portfolio.cash == pytest.approx(100_000 + portfolio.realized_pnl)


def test_strength_scales_quantity_and_sells_never_exceed_holding():
    portfolio = Portfolio.opening(100_000)
    assert run(portfolio, signal(strength=0.55)).fill.quantity == 5
    assert run(portfolio, signal(Side.SELL, strength=1.0, n=2), quantity=50).fill.quantity == 5


@pytest.mark.parametrize(
    ("prepare", "sig", "reason"),
    [
        (None, signal(Side.SELL), "no AAPL position to sell"),
        (None, signal(price=2_000), "order notional 20020.00 exceeds max order notional 10000.00"),
        ([signal(n=1)] * 10, signal(n=99), "above max position per symbol 100"),
        ([signal(symbol="MSFT", n=1), signal(symbol="TSLA", n=2)], signal(n=3), "max open positions 2"),
    ],
)
def test_risk_limits_reject_with_reason(prepare, sig, reason):
    portfolio = Portfolio.opening(100_000)
    for earlier in prepare or []:
        run(portfolio, earlier)
    result = run(portfolio, sig)
    assert result.order.status is OrderStatus.REJECTED and result.fill is None
    assert reason in result.order.reason


def test_insufficient_cash():
    result = run(Portfolio.opening(500), signal(price=100.0))
    assert "insufficient cash" in result.order.reason


def test_daily_loss_stop_blocks_buys_but_allows_closing():
    portfolio = Portfolio.opening(100_000)
    run(portfolio, signal(price=900.0, n=1))  # 10 shares at ~901
    portfolio.mark({"AAPL": 800.0})  # down ~1010 today
    blocked = run(portfolio, signal(symbol="MSFT", price=10.0, n=2))
    assert "daily loss stop" in blocked.order.reason
    closing = run(portfolio, signal(Side.SELL, price=800.0, n=3))
    assert closing.order.status is OrderStatus.FILLED
    next_day = run(portfolio, signal(symbol="MSFT", price=10.0, n=4), now=NOW + timedelta(days=1))
    assert next_day.order.status is OrderStatus.FILLED


def test_portfolio_round_trips_through_json():
    portfolio = Portfolio.opening(1_000)
    run(portfolio, signal(price=10.0))
    assert Portfolio.model_validate_json(portfolio.model_dump_json()) == portfolio
