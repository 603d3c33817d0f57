"""The paper account: cash, long positions with their exit levels, orders waiting for
their fill, realised P&L and the day's starting equity.

Pure state with JSON round-tripping, so the service can keep it in Redis and
update it atomically with the orders and fills it publishes.
"""

from __future__ import annotations

from datetime import date, datetime

from pydantic import BaseModel, Field
from redis.asyncio import Redis
from redis.asyncio.client import Pipeline

from tradebot.common import keys
from tradebot.common.models import Fill, Position, Side, TradeSignal


class Holding(BaseModel):
    quantity: float = 0.0
    average_price: float = 0.0
    realized_pnl: float = 0.0
    market_price: float = 0.0
    strategy: str = ""
    """The strategy whose signal opened the position: only its sell signals close it."""
    entry_signal: str = ""
    stop_price: float | None = None
    take_profit_price: float | None = None
    trail_high: float | None = None
    """Highest trade since the entry, for the trailing stop."""
    last_fill_time: datetime | None = None
    """When the symbol last traded here, for the per-symbol cooldown."""


class PendingOrder(BaseModel):
    """A signal's market order, waiting for the first trade after the tick that made it."""

    signal_id: str
    strategy: str
    symbol: str
    side: Side
    reference_price: float
    signal_time: datetime
    tick_id: str
    tick_time: datetime
    atr: float | None = None
    armed: bool = False
    """True once its own tick has gone by: the next trade fills it."""
    traceparent: str | None = None
    """The signal's trace, which its fill joins."""
    reason: str = ""
    """What its filled order says (an operator's close says so; a strategy's order is silent)."""

    @classmethod
    def of(cls, signal: TradeSignal, traceparent: str | None = None) -> PendingOrder:
        """A signal's market order, as queued when the signal is accepted."""
        return cls(
            signal_id=signal.id,
            strategy=signal.strategy,
            symbol=signal.symbol,
            side=signal.side,
            reference_price=signal.price,
            signal_time=signal.time,
            tick_id=signal.tick_id,
            tick_time=signal.tick_time,
            atr=signal.atr,
            traceparent=traceparent,
        )


class Portfolio(BaseModel):
    cash: float
    holdings: dict[str, Holding] = Field(default_factory=dict)
    realized_pnl: float = 0.0
    fees_paid: float = 0.0
    trading_day: date | None = None
    day_start_equity: float | None = None
    orders_filled: int = 0
    orders_rejected: int = 0
    pending: dict[str, list[PendingOrder]] = Field(default_factory=dict)
    """Orders waiting for a trade, by symbol."""
    paused: bool = False
    """Set by an operator's pause: no new positions; exits and sells still run."""

    @classmethod
    def opening(cls, cash: float) -> Portfolio:
        return cls(cash=cash)

    def open_positions(self) -> dict[str, Holding]:
        return {s: h for s, h in self.holdings.items() if h.quantity > 0}

    def quantity(self, symbol: str) -> float:
        holding = self.holdings.get(symbol)
        return holding.quantity if holding else 0.0

    def mark(self, prices: dict[str, float]) -> None:
        """Update the last known market price of held symbols."""
        for symbol, price in prices.items():
            if symbol in self.holdings and price > 0:
                self.holdings[symbol].market_price = price

    def unrealized_pnl(self) -> float:
        return sum((h.market_price - h.average_price) * h.quantity for h in self.holdings.values())

    def equity(self) -> float:
        return self.cash + sum(h.market_price * h.quantity for h in self.holdings.values())

    def roll_day(self, now: datetime) -> None:
        """At the first decision of a new UTC day, remember the equity it starts with."""
        today = now.date()
        if self.trading_day != today:
            self.trading_day = today
            self.day_start_equity = self.equity()

    def day_pnl(self) -> float:
        return self.equity() - (self.day_start_equity if self.day_start_equity is not None else self.equity())

    def apply_fill(self, fill: Fill) -> Position:
        """Book a fill; returns the symbol's position after it."""
        holding = self.holdings.setdefault(fill.symbol, Holding())
        holding.market_price = fill.price
        holding.last_fill_time = fill.time
        if fill.side is Side.BUY:
            cost = holding.average_price * holding.quantity + fill.price * fill.quantity
            holding.quantity += fill.quantity
            holding.average_price = cost / holding.quantity
            self.cash -= fill.price * fill.quantity + fill.fee
            holding.realized_pnl -= fill.fee  # fees are a realised cost when paid
            self.realized_pnl -= fill.fee
        else:
            realized = (fill.price - holding.average_price) * fill.quantity - fill.fee
            holding.quantity -= fill.quantity
            holding.realized_pnl += realized
            self.realized_pnl += realized
            self.cash += fill.price * fill.quantity - fill.fee
            if holding.quantity <= 1e-9:
                holding.quantity, holding.average_price = 0.0, 0.0
                holding.strategy, holding.entry_signal = "", ""
                holding.stop_price = holding.take_profit_price = holding.trail_high = None
        self.fees_paid += fill.fee
        return Position(
            symbol=fill.symbol,
            quantity=holding.quantity,
            average_price=holding.average_price,
            realized_pnl=holding.realized_pnl,
            market_price=holding.market_price,
            unrealized_pnl=(holding.market_price - holding.average_price) * holding.quantity,
            time=fill.time,
        )


async def load_portfolio(redis: Redis | Pipeline, starting_cash: float) -> Portfolio:
    """The stored account (`execution:portfolio`), or a fresh one with the starting cash."""
    raw = await redis.get(keys.PORTFOLIO)
    return Portfolio.model_validate_json(raw) if raw else Portfolio.opening(starting_cash)
