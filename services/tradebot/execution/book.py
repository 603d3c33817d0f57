"""Booking a broker's orders and fills into the paper account's streams. Pure.

The execution service with a broker venue keeps, next to the `Portfolio` the
simulator keeps, a `Book` of the orders open at the broker. Every fill the broker
reports — on its stream, or found later through REST — becomes a `Fill` and a
`Position` on the same streams the simulator writes; an order becomes one `Order`
when it is final (filled, canceled, expired or rejected), so storage, the API, the
dashboard and backtests see the same records for either venue.

A fill is known by its order and the order's filled quantity after it, which the
stream (`order.filled_qty`) and the REST activities (`cum_qty`) both carry: a fill
seen twice, once live and once in a catch-up, is booked once. Reconciliation takes
the broker's positions and cash as the truth and records what it had to change.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime

from pydantic import BaseModel, Field

from tradebot.common.models import Fill, Message, OrderStatus, Position, Side
from tradebot.execution.paper import PaperBroker
from tradebot.execution.portfolio import Holding, PendingOrder, Portfolio
from tradebot.execution.venue import (
    FINAL_EVENTS,
    BrokerAccount,
    BrokerFill,
    BrokerOrder,
    BrokerPosition,
    BrokerUpdate,
    OrderIntent,
    OrderType,
)

EPSILON = 1e-9
RECENT_FILLS = 1_000
"""Fill keys remembered, so a catch-up that overlaps the stream books nothing twice."""
FINAL_STATUS = {
    "fill": OrderStatus.FILLED,
    "canceled": OrderStatus.CANCELED,
    "expired": OrderStatus.EXPIRED,
    "rejected": OrderStatus.REJECTED,
}
EXTERNAL = "external"
"""The strategy of an order found at the broker that this service did not place."""


class TrackedOrder(BaseModel):
    """An order open at the broker, with what our `Order` record will say of it."""

    broker_id: str
    key: str
    """Our order's key: the signal id, `exit:<entry signal>` for a bracket leg."""
    strategy: str
    symbol: str
    side: Side
    quantity: float
    reference_price: float
    time: datetime
    reason: str = ""
    filled: float = 0.0
    leg: bool = False
    order_type: OrderType = "market"
    limit_price: float | None = None
    stop_price: float | None = None
    take_profit_price: float | None = None
    traceparent: str | None = None

    def intent(self) -> OrderIntent:
        """The order to submit for it (again)."""
        return OrderIntent(self.key, self.symbol, self.side, self.quantity, self.order_type,
                           self.limit_price, self.stop_price, self.take_profit_price)  # fmt: skip


class Book(BaseModel):
    """The orders open at the broker and where the last catch-up of fills ended."""

    orders: dict[str, TrackedOrder] = Field(default_factory=dict)
    """Open orders by broker id."""
    closed: list[str] = Field(default_factory=list)
    """Broker ids of the newest final orders, never tracked again."""
    last_fill: datetime | None = None
    recent_fills: list[str] = Field(default_factory=list)
    last_reconciled: datetime | None = None
    differences: list[str] = Field(default_factory=list)
    """What the last reconciliation changed to match the broker (empty: nothing)."""

    def open_for(self, symbol: str) -> list[TrackedOrder]:
        return [o for o in self.orders.values() if o.symbol == symbol]

    def remember(self, key: str) -> None:
        self.recent_fills.append(key)
        del self.recent_fills[:-RECENT_FILLS]

    def knows(self, broker_id: str) -> bool:
        return broker_id in self.orders or broker_id in self.closed


@dataclass
class Booked:
    """What a step produced: messages to publish (with their trace) and what happened."""

    messages: list[tuple[Message, str | None]] = field(default_factory=list)
    counts: Counter[str] = field(default_factory=Counter)

    def add(self, message: Message, traceparent: str | None = None) -> None:
        self.messages.append((message, traceparent))

    def extend(self, other: Booked) -> None:
        self.messages.extend(other.messages)
        self.counts.update(other.counts)


def _leg_reason(leg: BrokerOrder) -> str:
    kind = "take-profit" if leg.order_type == "limit" else "stop-loss"
    return f"{kind}: bracket leg at the broker"


def intended(pending: PendingOrder, intent: OrderIntent, reference_price: float) -> TrackedOrder:
    """The signal's order as decided, before the broker has an id for it (kept until the signal is
    acknowledged: a redelivery submits exactly this again, never a fresh decision)."""
    return TrackedOrder(broker_id="", key=pending.signal_id, strategy=pending.strategy, symbol=pending.symbol,
                        side=pending.side, quantity=intent.quantity, reference_price=reference_price,
                        time=pending.signal_time, order_type=intent.order_type,
                        limit_price=intent.limit_price, stop_price=intent.stop_loss,
                        take_profit_price=intent.take_profit, traceparent=pending.traceparent)  # fmt: skip


def track(book: Book, order: BrokerOrder, meant: TrackedOrder) -> None:
    """Remember an order we placed (and its bracket legs) until it is final; an order already
    known (a redelivered signal's, found at the broker) is left as it is."""
    if book.knows(order.id):
        return
    book.orders[order.id] = meant.model_copy(
        update={"broker_id": order.id, "quantity": order.quantity, "time": order.time or meant.time}
    )
    for leg in order.legs:
        if not book.knows(leg.id):
            book.orders[leg.id] = meant.model_copy(
                update={"broker_id": leg.id, "key": f"exit:{meant.key}", "quantity": leg.quantity,
                        "side": leg.side, "limit_price": None,
                        "time": leg.time or meant.time, "reason": _leg_reason(leg), "leg": True,
                        "stop_price": None, "take_profit_price": None, "traceparent": None}
            )  # fmt: skip


def adopt(book: Book, order: BrokerOrder, now: datetime, meant: TrackedOrder | None = None) -> None:
    """An order at the broker missing from our records: one we were submitting when we stopped
    (`meant`: booked as its signal's), else one placed elsewhere (booked as `external`)."""
    if meant is None:
        meant = TrackedOrder(broker_id="", key=f"broker:{order.client_order_id}", strategy=EXTERNAL,
                             symbol=order.symbol, side=order.side, quantity=order.quantity,
                             reference_price=order.filled_average_price or 0.0, time=order.time or now,
                             reason="placed at the broker, not by a signal")  # fmt: skip
    track(book, order, meant)


def book_fill(book: Book, portfolio: Portfolio, fill: BrokerFill) -> Booked:
    """A fill of a tracked order: Fill and Position (and the Order once it is complete)."""
    done = Booked()
    tracked = book.orders.get(fill.order_id)
    if tracked is None or fill.key in book.recent_fills or fill.cumulative <= tracked.filled + EPSILON:
        done.counts["duplicate_fills"] += 1
        return done
    quantity = round(fill.cumulative - tracked.filled, 9)
    tracked.filled = fill.cumulative
    if tracked.reference_price <= 0:
        tracked.reference_price = fill.price
    book.remember(fill.key)
    book.last_fill = max(book.last_fill or fill.time, fill.time)
    record = Fill(
        id=f"fill:{tracked.key}:{fill.cumulative:g}",
        order_id=f"order:{tracked.key}",
        time=fill.time,
        symbol=tracked.symbol,
        side=tracked.side,
        quantity=quantity,
        price=fill.price,
        fee=0.0,
        slippage=round((fill.price - tracked.reference_price) * quantity, 6),
    )
    portfolio.roll_day(fill.time)
    position = portfolio.apply_fill(record)
    if tracked.side is Side.BUY and not tracked.leg:
        opened = portfolio.holdings[tracked.symbol]
        opened.strategy, opened.entry_signal = tracked.strategy, tracked.key
        opened.stop_price, opened.take_profit_price = tracked.stop_price, tracked.take_profit_price
    done.add(record, tracked.traceparent)
    done.add(position, tracked.traceparent)
    done.counts["fills"] += 1
    if tracked.filled >= tracked.quantity - EPSILON:
        done.extend(close(book, portfolio, tracked.broker_id, "fill", fill.time))
    return done


def close(
    book: Book, portfolio: Portfolio, broker_id: str, event: str, when: datetime, said: str = ""
) -> Booked:
    """The order is final at the broker: its one Order record (none for an unfilled leg)."""
    done = Booked()
    tracked = book.orders.pop(broker_id, None)
    if tracked is None:
        return done
    book.closed.append(broker_id)
    del book.closed[:-RECENT_FILLS]
    status = FINAL_STATUS[event]
    done.counts[f"orders_{status.value}"] += 1
    if tracked.leg and tracked.filled <= EPSILON:
        return done  # the other leg filled, or a sell signal canceled it: not an order of ours
    if status is OrderStatus.FILLED:
        portfolio.orders_filled += 1
        reason = tracked.reason
    else:
        if status is OrderStatus.REJECTED:
            portfolio.orders_rejected += 1
        reason = f"{event} by the broker" + (f": {said}" if said else "")
        if tracked.filled > EPSILON:
            reason += f" after {tracked.filled:g} of {tracked.quantity:g} filled"
    if tracked.reference_price <= 0:
        return done  # an external order that never traded: nothing to record
    order = PaperBroker.order(tracked.key, tracked.strategy, tracked.symbol, tracked.side, tracked.filled,
                              tracked.reference_price, when, reason, status)  # fmt: skip
    done.add(order, tracked.traceparent)
    return done


def apply_update(
    book: Book, portfolio: Portfolio, update: BrokerUpdate, submitting: dict[str, TrackedOrder] | None = None
) -> Booked:
    """One event of the broker's stream (`submitting`: orders decided but not yet known to be placed)."""
    if update.order.id not in book.orders:
        if update.fill is None or book.knows(update.order.id):
            return Booked()
        adopt(book, update.order, update.time, (submitting or {}).get(update.order.client_order_id))
    done = book_fill(book, portfolio, update.fill) if update.fill is not None else Booked()
    if update.event in FINAL_EVENTS:
        said = "" if update.event == "fill" else update.order.status
        done.extend(close(book, portfolio, update.order.id, update.event, update.time, said))
    return done


def reconcile_positions(
    portfolio: Portfolio, account: BrokerAccount, positions: list[BrokerPosition], now: datetime
) -> tuple[Booked, list[str]]:
    """Make the account match the broker's positions and cash; each change in words."""
    done, changes = Booked(), []
    theirs = {p.symbol: p for p in positions}
    for symbol in sorted(set(theirs) | set(portfolio.open_positions())):
        broker = theirs.get(symbol)
        holding = portfolio.holdings.setdefault(symbol, Holding())
        quantity = broker.quantity if broker else 0.0
        average = broker.average_price if broker else 0.0
        if abs(holding.quantity - quantity) <= EPSILON and abs(holding.average_price - average) <= 1e-6:
            if broker:
                holding.market_price = broker.market_price
            continue
        changes.append(
            f"{symbol} {holding.quantity:g} @ {holding.average_price:g} -> {quantity:g} @ {average:g}"
        )
        holding.quantity, holding.average_price = quantity, average
        holding.market_price = broker.market_price if broker else holding.market_price
        if quantity <= EPSILON:
            holding.quantity, holding.average_price = 0.0, 0.0
            holding.strategy, holding.entry_signal = "", ""
            holding.stop_price = holding.take_profit_price = holding.trail_high = None
        done.add(
            Position(symbol=symbol, quantity=holding.quantity, average_price=holding.average_price,
                     realized_pnl=holding.realized_pnl, market_price=holding.market_price,
                     unrealized_pnl=(holding.market_price - holding.average_price) * holding.quantity,
                     time=now)
        )  # fmt: skip
    if abs(portfolio.cash - account.cash) > 0.005:
        changes.append(f"cash {portfolio.cash:.2f} -> {account.cash:.2f}")
        portfolio.cash = account.cash
    done.counts["reconcile_differences"] += len(changes)
    return done, changes
