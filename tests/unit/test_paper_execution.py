"""The paper broker: when orders fill, sizing, exits, filters, costs, P&L and risk limits. Pure."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from tradebot.common.models import OrderStatus, PriceTick, Side, TradeSignal
from tradebot.execution.exits import ExitRules
from tradebot.execution.paper import PaperBroker, TradingCosts
from tradebot.execution.portfolio import Portfolio
from tradebot.execution.risk import RiskLimits
from tradebot.execution.sizing import Sizing

NOW = datetime(2026, 1, 5, 15, 0, tzinfo=UTC)
COSTS = TradingCosts(slippage_bps=10, fee_per_share=0.01, min_fee=1.0)
LIMITS = RiskLimits(max_position_per_symbol=100, max_order_notional=10_000, max_open_positions=2,
                    daily_loss_limit=500)  # fmt: skip
TEN_SHARES = Sizing("quantity", quantity=10)


def broker(**overrides) -> PaperBroker:
    return PaperBroker(**{"costs": COSTS, "limits": LIMITS, "sizing": TEN_SHARES, **overrides})


def tick(price, n, symbol="AAPL", seconds=None, kind="trade") -> PriceTick:
    at = NOW + timedelta(seconds=n if seconds is None else seconds)
    return PriceTick(id=f"t{n}", source="synthetic", symbol=symbol, time=at, price=price, size=1, type=kind)


def signal(
    side=Side.BUY, n=0, symbol="AAPL", strength=1.0, price=None, atr=None, strategy="test"
) -> TradeSignal:
    source = tick(price or 100.0, n, symbol)
    return TradeSignal(
        id=f"sig-{symbol}-{n}", time=source.time, strategy=strategy, symbol=symbol, side=side,
        strength=strength, reason="test", price=source.price, source="synthetic", tick_id=source.id,
        tick_time=source.time, atr=atr,
    )  # fmt: skip


def trade_through(b, portfolio, sig, fill_price, n=None):
    """Accept `sig`, pass its own tick, then one more trade that fills it."""
    assert b.accept(portfolio, sig) is None
    assert b.on_tick(portfolio, tick(sig.price, int(sig.tick_id[1:]), sig.symbol)) == []
    n = int(sig.tick_id[1:]) + 1 if n is None else n
    return b.on_tick(portfolio, tick(fill_price, n, sig.symbol))


def test_an_order_fills_at_the_next_trade_never_at_its_own_tick():
    b, portfolio = broker(), Portfolio.opening(100_000)
    b.accept(portfolio, signal(n=1, price=100.0))
    assert b.on_tick(portfolio, tick(99.0, 0)) == []  # before the signal's tick
    assert b.on_tick(portfolio, tick(100.0, 1)) == []  # its own tick
    assert b.on_tick(portfolio, tick(101.0, 2, kind="quote")) == []  # quotes do not fill
    [bought] = b.on_tick(portfolio, tick(102.0, 3))
    assert bought.fill.price == pytest.approx(102.102)  # the next trade, plus 10 bp slippage
    assert bought.order.reference_price == 100.0 and bought.fill.time == NOW + timedelta(seconds=3)
    assert bought.fill.slippage == pytest.approx((102.102 - 100.0) * 10)


def test_a_signal_whose_tick_has_passed_fills_at_the_next_later_trade():
    """A bar's signal comes with the next bucket's first trade: that trade fills it."""
    b, portfolio = broker(), Portfolio.opening(100_000)
    b.on_tick(portfolio, tick(100.0, 1))
    b.accept(portfolio, signal(n=1))
    [bought] = b.on_tick(portfolio, tick(103.0, 61))
    assert bought.fill.price == pytest.approx(103.103)


def test_buy_then_sell_books_slippage_fees_and_pnl():
    b, portfolio = broker(), Portfolio.opening(100_000)
    [bought] = trade_through(b, portfolio, signal(n=0), 100.0)
    assert bought.fill.price == pytest.approx(100.1) and bought.fill.fee == 1.0
    assert portfolio.cash == pytest.approx(100_000 - 1001 - 1)
    [sold] = trade_through(b, portfolio, signal(Side.SELL, n=10), 110.0)
    assert sold.fill.price == pytest.approx(109.89) and sold.fill.quantity == 10
    assert portfolio.realized_pnl == pytest.approx((109.89 - 100.1) * 10 - 2.0)
    assert sold.position.quantity == 0
    assert portfolio.cash == pytest.approx(100_000 + portfolio.realized_pnl)


@pytest.mark.parametrize(
    ("sizing", "atr", "shares"),
    [
        (Sizing("quantity", quantity=7), None, 7),
        (Sizing("notional", notional=2_500), None, 24),  # 2,500 / 100.1
        (Sizing("equity_pct", equity_pct=5), None, 49),  # 5% of 100,000 / 100.1
        (
            Sizing("risk", risk_pct=0.5),
            1.0,
            99,
        ),  # 500 at risk / (2 ATR) = 250, capped: 10,000 notional / 100.1
        (Sizing("risk", risk_pct=0.1), 1.0, 50),  # 100 / 2.0
        (Sizing("risk", risk_pct=0.1), None, 49),  # no ATR: the 2% stop, 2.002 away
    ],
)
def test_sizing_modes(sizing, atr, shares):
    b = broker(sizing=sizing, exits=ExitRules(stop_loss_pct=2, stop_loss_atr=2))
    [bought] = trade_through(b, Portfolio.opening(100_000), signal(atr=atr), 100.0)
    assert bought.fill.quantity == shares


def test_risk_sizing_without_any_stop_is_refused_with_the_reason():
    [refused] = trade_through(broker(sizing=Sizing("risk")), Portfolio.opening(100_000), signal(), 100.0)
    assert "risk sizing needs a stop distance" in refused.order.reason


@pytest.mark.parametrize(
    ("rules", "path", "reason", "price"),
    [
        (ExitRules(stop_loss_pct=2), [99.0, 98.0], "stop-loss: trade 98 at or below stop 98.098", 97.902),
        (ExitRules(stop_loss_atr=2), [99.0, 97.9], "stop-loss: trade 97.9 at or below stop 98.1", 97.8021),
        (ExitRules(take_profit_pct=4), [103.0, 104.2], "take-profit: trade 104.2 at or above target 104.104",
         104.0958),
        (ExitRules(trailing_stop_pct=3), [105.0, 110.0, 106.8, 106.6],
         "trailing stop: trade 106.6 is 3% below the high 110 since entry", 106.4934),
    ],
)  # fmt: skip
def test_exits_are_orders_with_their_reason(rules, path, reason, price):
    b, portfolio = broker(exits=rules), Portfolio.opening(100_000)
    trade_through(b, portfolio, signal(atr=1.0), 100.0)
    results = [r for i, p in enumerate(path) for r in b.on_tick(portfolio, tick(p, 10 + i))]
    [exited] = results
    assert exited.order.status is OrderStatus.FILLED and exited.order.reason == reason
    assert exited.order.signal_id == "exit:sig-AAPL-0" and exited.order.strategy == "test"
    assert exited.fill.price == pytest.approx(price) and portfolio.quantity("AAPL") == 0


def test_weak_buys_are_refused_at_once_but_sells_are_not_filtered():
    b, portfolio = broker(min_signal_strength=0.5), Portfolio.opening(100_000)
    refused = b.accept(portfolio, signal(strength=0.2))
    assert refused.order.status is OrderStatus.REJECTED
    assert refused.order.reason == "signal strength 0.2 is below MIN_SIGNAL_STRENGTH 0.5"
    trade_through(b, portfolio, signal(n=3), 100.0)
    [sold] = trade_through(b, portfolio, signal(Side.SELL, n=9, strength=0.1), 100.0)
    assert sold.fill is not None


def test_cooldown_refuses_a_new_entry_soon_after_a_fill():
    b, portfolio = broker(cooldown_seconds=60), Portfolio.opening(100_000)
    trade_through(b, portfolio, signal(n=0), 100.0)
    trade_through(b, portfolio, signal(Side.SELL, n=10), 100.0)
    [refused] = trade_through(b, portfolio, signal(n=20), 100.0)
    assert "AAPL cooldown: last fill 10s ago, COOLDOWN_SECONDS is 60" in refused.order.reason
    [bought] = trade_through(b, portfolio, signal(n=80), 100.0)
    assert bought.fill is not None


def test_one_position_per_symbol_closed_only_by_its_own_strategy():
    b, portfolio = broker(), Portfolio.opening(100_000)
    trade_through(b, portfolio, signal(n=0, strategy="rsi"), 100.0)
    [again] = trade_through(b, portfolio, signal(n=5, strategy="sma"), 100.0)
    assert "already long 10 AAPL" in again.order.reason
    [other] = trade_through(b, portfolio, signal(Side.SELL, n=10, strategy="sma"), 100.0)
    assert other.order.reason == "the AAPL position belongs to rsi, not sma"
    [own] = trade_through(b, portfolio, signal(Side.SELL, n=20, strategy="rsi"), 100.0)
    assert own.fill.quantity == 10


@pytest.mark.parametrize(
    ("prepare", "sig", "fill_at", "reason"),
    [
        ([], signal(Side.SELL), 100.0, "no AAPL position to sell"),
        ([signal(symbol="MSFT"), signal(symbol="TSLA")], signal(n=3), 100.0, "max open positions 2"),
    ],
)
def test_risk_limits_reject_with_reason(prepare, sig, fill_at, reason):
    b, portfolio = broker(), Portfolio.opening(100_000)
    for earlier in prepare:
        trade_through(b, portfolio, earlier, 100.0)
    [result] = trade_through(b, portfolio, sig, fill_at)
    assert result.order.status is OrderStatus.REJECTED and result.fill is None
    assert reason in result.order.reason


def test_size_is_capped_by_notional_position_and_cash():
    [capped] = trade_through(
        broker(sizing=Sizing("quantity", quantity=500)), Portfolio.opening(100_000), signal(), 200.0
    )
    assert capped.fill.quantity == 49  # max order notional 10,000 / 200.2
    [poor] = trade_through(broker(), Portfolio.opening(500), signal(), 100.0)
    assert poor.fill.quantity == 4  # what 500 of cash buys after the fee
    [broke] = trade_through(broker(), Portfolio.opening(50), signal(), 100.0)
    assert "order rounds to zero shares" in broke.order.reason


def test_daily_loss_stop_blocks_buys_but_allows_closing():
    b, portfolio = broker(sizing=Sizing("quantity", quantity=10)), Portfolio.opening(100_000)
    trade_through(b, portfolio, signal(n=0), 900.0)  # 10 shares at ~901 (max notional 10,000)
    b.on_tick(portfolio, tick(800.0, 5))  # marked down ~1,010 today
    [blocked] = trade_through(b, portfolio, signal(n=10, symbol="MSFT"), 10.0)
    assert "daily loss stop" in blocked.order.reason
    [closing] = trade_through(b, portfolio, signal(Side.SELL, n=20), 800.0)
    assert closing.order.status is OrderStatus.FILLED
    [next_day] = trade_through(b, portfolio, signal(n=86_400, symbol="MSFT"), 10.0)
    assert next_day.order.status is OrderStatus.FILLED


def test_portfolio_with_queued_orders_round_trips_through_json():
    b, portfolio = broker(exits=ExitRules(stop_loss_pct=1, trailing_stop_pct=2)), Portfolio.opening(1_000)
    trade_through(b, portfolio, signal(price=10.0), 10.0)
    b.accept(portfolio, signal(n=50, symbol="MSFT"))
    assert Portfolio.model_validate_json(portfolio.model_dump_json()) == portfolio
    assert portfolio.holdings["AAPL"].stop_price == pytest.approx(9.9099)
