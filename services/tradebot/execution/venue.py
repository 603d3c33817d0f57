"""The seam between the execution service and a real broker: what it sends, what it hears back.

A broker venue (Alpaca today, `tradebot.providers.alpaca.trading`) turns an
`OrderIntent` into an order at the broker, reports the broker's order events as
`BrokerUpdate`s from its stream, and answers the REST questions reconciliation
asks (account, positions, open orders, fills since a moment). Everything here is
plain data in our own words, so the booking (`tradebot.execution.book`) is pure
and knows no SDK.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal, Protocol

from tradebot.common.models import Side

OrderType = Literal["market", "limit"]
FINAL_EVENTS = frozenset({"fill", "canceled", "expired", "rejected"})
"""Events after which the broker does nothing more with an order."""
FILL_EVENTS = frozenset({"fill", "partial_fill"})


class OrderRefused(Exception):
    """The broker refused an order when it was submitted (buying power, a bad field): its words."""


class VenueRejected(Exception):
    """The broker refused our credentials; retrying soon won't help (the message names the variables)."""


@dataclass(frozen=True)
class OrderIntent:
    """One order to place. `client_order_id` is the signal's id, so the broker itself refuses a second."""

    client_order_id: str
    symbol: str
    side: Side
    quantity: float
    order_type: OrderType = "market"
    limit_price: float | None = None
    stop_loss: float | None = None
    """With take_profit (or alone), a bracket (or OTO) order: the exits ride at the broker."""
    take_profit: float | None = None


@dataclass(frozen=True)
class BrokerOrder:
    """An order as the broker sees it now."""

    id: str
    client_order_id: str
    symbol: str
    side: Side
    status: str
    quantity: float
    filled_quantity: float = 0.0
    filled_average_price: float | None = None
    order_type: str = "market"
    time: datetime | None = None
    legs: tuple[BrokerOrder, ...] = ()

    @property
    def is_open(self) -> bool:
        return self.status not in ("filled", "canceled", "expired", "rejected", "replaced", "done_for_day")


@dataclass(frozen=True)
class BrokerFill:
    """One execution: `cumulative` is the order's filled quantity after it (the fill's identity)."""

    order_id: str
    symbol: str
    side: Side
    quantity: float
    cumulative: float
    price: float
    time: datetime

    @property
    def key(self) -> str:
        return f"{self.order_id}:{self.cumulative:g}"


@dataclass(frozen=True)
class BrokerUpdate:
    """One event of the broker's order stream (Alpaca: a `trade_updates` message)."""

    event: str
    order: BrokerOrder
    time: datetime
    fill: BrokerFill | None = None


@dataclass(frozen=True)
class BrokerPosition:
    symbol: str
    quantity: float
    average_price: float
    market_price: float


@dataclass(frozen=True)
class BrokerAccount:
    cash: float
    equity: float
    status: str
    blocked: bool = False


@dataclass
class Snapshot:
    """What reconciliation reads from the broker's REST API, in one go."""

    account: BrokerAccount
    positions: list[BrokerPosition]
    open_orders: list[BrokerOrder]
    fills: list[BrokerFill]
    orders: dict[str, BrokerOrder] = field(default_factory=dict)
    """Orders we tracked that are no longer open, as they ended (by broker id)."""


class Venue(Protocol):
    """A broker behind the execution service."""

    name: str
    description: str
    stats: Counter[str]
    """Requests, retries, rate-limited answers: shown in the heartbeat's counters."""

    async def account(self) -> BrokerAccount:
        """The account; raises VenueRejected when the broker refuses the credentials."""

    async def submit(self, intent: OrderIntent) -> BrokerOrder:
        """Place the order, or return the one already placed with its client_order_id;
        raises OrderRefused with the broker's answer."""

    async def order(self, order_id: str) -> BrokerOrder: ...

    async def cancel(self, order_id: str) -> BrokerOrder:
        """Cancel and wait until the broker says it is no longer open; returns it as it ended."""

    async def open_orders(self) -> list[BrokerOrder]: ...

    async def positions(self) -> list[BrokerPosition]: ...

    async def fills_since(self, moment: datetime) -> list[BrokerFill]:
        """Every fill after `moment`, oldest first."""

    async def stream(
        self,
        on_update: Callable[[BrokerUpdate], None],
        on_listening: Callable[[], None],
        on_malformed: Callable[[str], None],
    ) -> None:
        """One connection of the order stream: deliver updates until it ends (raise VenueRejected
        when the broker refuses us; any other end is a reconnect). `on_listening` says the broker
        acknowledged the subscription; `on_malformed` an event that was skipped."""
