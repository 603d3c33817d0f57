"""Booking a broker's orders and fills (pure), and the Alpaca venue's requests and settings."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from alpaca.trading.enums import OrderClass

from tradebot.common.models import Fill, Order, Position, Side, TradeSignal
from tradebot.common.settings import Settings, SettingsError, load_settings
from tradebot.execution.book import Book, apply_update, book_fill, intended, reconcile_positions, track
from tradebot.execution.portfolio import PendingOrder, Portfolio
from tradebot.execution.venue import (
    BrokerAccount,
    BrokerFill,
    BrokerOrder,
    BrokerPosition,
    BrokerUpdate,
    OrderIntent,
)
from tradebot.providers.alpaca.trading import activity_fill, endpoints, order_request

NOW = datetime(2026, 1, 5, 15, 0, tzinfo=UTC)
SIGNAL = TradeSignal(
    id="rsi:alpaca:AAPL:1m:1767625200", time=NOW, strategy="rsi", symbol="AAPL", side=Side.BUY, strength=1,
    reason="test", price=100.0, source="alpaca", tick_id="t1", tick_time=NOW,
)  # fmt: skip


def placed(quantity: float = 10, legs: tuple[BrokerOrder, ...] = ()) -> tuple[Book, Portfolio, BrokerOrder]:
    book, account = Book(), Portfolio.opening(10_000)
    order = BrokerOrder("o1", SIGNAL.id, "AAPL", Side.BUY, "new", quantity, time=NOW, legs=legs)
    intent = OrderIntent(SIGNAL.id, "AAPL", Side.BUY, quantity, stop_loss=98.0, take_profit=104.0)
    track(book, order, intended(PendingOrder.of(SIGNAL), intent, 100.0))
    return book, account, order


def fill(
    cumulative: float, quantity: float, price: float, order_id: str = "o1", side: Side = Side.BUY
) -> BrokerFill:
    return BrokerFill(
        order_id, "AAPL", side, quantity, cumulative, price, NOW + timedelta(seconds=cumulative)
    )


def kinds(messages) -> list[str]:
    return [type(m).__name__ for m, _ in messages]


def test_a_fill_seen_on_the_stream_and_again_in_rest_is_booked_once() -> None:
    book, account, _ = placed()
    live = book_fill(book, account, fill(10, 10, 100.5))
    assert kinds(live.messages) == ["Fill", "Position", "Order"]
    again = book_fill(book, account, fill(10, 10, 100.5))
    assert again.messages == [] and again.counts["duplicate_fills"] == 1
    assert account.quantity("AAPL") == 10 and account.cash == pytest.approx(10_000 - 1005)
    recorded = live.messages[2][0]
    assert isinstance(recorded, Order) and (recorded.status, recorded.quantity) == ("filled", 10)


def test_a_missed_partial_fill_is_made_up_by_the_next_cumulative_quantity() -> None:
    book, account, _ = placed()
    book_fill(book, account, fill(3, 3, 100.0))
    later = book_fill(book, account, fill(10, 2, 101.0))  # the fill of 5 in between was never heard of
    recorded = later.messages[0][0]
    assert isinstance(recorded, Fill) and recorded.quantity == 7 and recorded.id == f"fill:{SIGNAL.id}:10"
    assert account.quantity("AAPL") == 10


def test_a_partial_fill_then_a_cancel_is_one_canceled_order_with_what_filled() -> None:
    book, account, order = placed()
    book_fill(book, account, fill(4, 4, 100.0))
    ended = apply_update(book, account, BrokerUpdate("canceled", order, NOW))
    [(recorded, _)] = ended.messages
    assert isinstance(recorded, Order) and (recorded.status, recorded.quantity) == ("canceled", 4)
    assert "after 4 of 10 filled" in recorded.reason and book.orders == {}


def test_a_bracket_leg_that_never_filled_leaves_no_order_record() -> None:
    legs = (
        BrokerOrder("tp", "tp-1", "AAPL", Side.SELL, "held", 10, order_type="limit"),
        BrokerOrder("sl", "sl-1", "AAPL", Side.SELL, "held", 10, order_type="stop"),
    )
    book, account, _ = placed(legs=legs)
    book_fill(book, account, fill(10, 10, 100.0))
    assert (account.holdings["AAPL"].stop_price, account.holdings["AAPL"].take_profit_price) == (98.0, 104.0)
    exit_fill = book_fill(book, account, fill(10, 10, 104.0, order_id="tp", side=Side.SELL))
    exit_order = exit_fill.messages[-1][0]
    assert isinstance(exit_order, Order) and exit_order.signal_id == f"exit:{SIGNAL.id}"
    assert exit_order.side == "sell" and "take-profit" in exit_order.reason
    sibling = apply_update(book, account, BrokerUpdate("canceled", legs[1], NOW))
    assert sibling.messages == [] and account.quantity("AAPL") == 0


def test_reconciliation_takes_the_brokers_positions_and_cash_and_says_what_changed() -> None:
    book, account, _ = placed()
    book_fill(book, account, fill(10, 10, 100.0))
    theirs = [BrokerPosition("AAPL", 12, 100.0, 101.0), BrokerPosition("MSFT", 5, 50.0, 51.0)]
    done, changes = reconcile_positions(account, BrokerAccount(8_500.0, 9_000.0, "ACTIVE"), theirs, NOW)
    assert changes == ["AAPL 10 @ 100 -> 12 @ 100", "MSFT 0 @ 0 -> 5 @ 50", "cash 9000.00 -> 8500.00"]
    assert [(p.symbol, p.quantity) for p, _ in done.messages if isinstance(p, Position)] == [
        ("AAPL", 12), ("MSFT", 5)]  # fmt: skip
    assert account.cash == 8_500.0
    _, again = reconcile_positions(account, BrokerAccount(8_500.0, 9_000.0, "ACTIVE"), theirs, NOW)
    assert again == []


@pytest.mark.parametrize(
    ("intent", "order_class", "kind"),
    [
        (OrderIntent("s", "AAPL", Side.BUY, 5), None, "market"),
        (
            OrderIntent("s", "AAPL", Side.BUY, 5, stop_loss=98.0, take_profit=104.0),
            OrderClass.BRACKET,
            "market",
        ),
        (OrderIntent("s", "AAPL", Side.BUY, 5, stop_loss=98.0), OrderClass.OTO, "market"),
        (OrderIntent("s", "AAPL", Side.SELL, 5, "limit", limit_price=99.9), None, "limit"),
    ],
)
def test_order_requests(intent: OrderIntent, order_class: OrderClass | None, kind: str) -> None:
    request = order_request(intent)
    fields = request.to_request_fields()
    assert (request.order_class, fields["type"], fields["client_order_id"]) == (order_class, kind, "s")
    if intent.limit_price:
        assert fields["limit_price"] == 99.9


def test_a_fill_activity_from_rest() -> None:
    raw = {"id": "20260105150000000::x", "activity_type": "FILL", "type": "partial_fill",
           "transaction_time": "2026-01-05T15:00:00.5Z", "price": "100.5", "qty": "3", "side": "sell_short",
           "symbol": "AAPL", "leaves_qty": "7", "order_id": "o1", "cum_qty": "3",
           "order_status": "partially_filled"}  # fmt: skip
    parsed = activity_fill(raw)
    assert (parsed.side, parsed.quantity, parsed.cumulative, parsed.key) == (Side.SELL, 3, 3, "o1:3")


def test_paper_unless_live_trading_is_asked_for() -> None:
    paper = Settings(_env_file=None, execution_venue="alpaca")
    assert endpoints(paper) == ("https://paper-api.alpaca.markets", "wss://paper-api.alpaca.markets/stream")
    live = Settings(_env_file=None, execution_venue="alpaca", alpaca_live_trading=True)
    assert endpoints(live) == ("https://api.alpaca.markets", "wss://api.alpaca.markets/stream")
    with pytest.raises(SettingsError, match="real money"):
        load_settings(
            _env_file=None, execution_venue="alpaca", alpaca_trading_url="https://api.alpaca.markets"
        )


def test_the_alpaca_venue_refuses_exits_a_bracket_cannot_hold() -> None:
    with pytest.raises(SettingsError, match="TRAILING_STOP_PCT must be 0 with EXECUTION_VENUE=alpaca"):
        load_settings(_env_file=None, execution_venue="alpaca", trailing_stop_pct=3)
    with pytest.raises(SettingsError, match="EXECUTION_VENUE="):
        load_settings(_env_file=None, execution_venue="ib")
