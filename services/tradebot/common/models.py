"""The data that flows between services: ticks, signals, orders, fills, positions.

Models are immutable and validated; every stream entry carries exactly one of
them in the versioned wire encoding of `tradebot.common.wire`.
"""

from __future__ import annotations

import re
import uuid
from datetime import datetime
from enum import StrEnum
from typing import Annotated, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

SOURCE_PATTERN = r"^[a-z][a-z0-9_]{0,30}$"
SYMBOL_PATTERN = r"^[A-Z][A-Z0-9]{0,9}(?:[.\-/][A-Z0-9]{1,5})?$"


def validate_source_name(name: str) -> str:
    """A data source name is also part of a table name, so only [a-z0-9_] is allowed."""
    if not re.match(SOURCE_PATTERN, name):
        raise ValueError(f"{name!r} is not a valid source name (lower-case letters, digits, _)")
    return name


# Checked in pydantic's Rust core, as they run for every entry on every stream. The wire
# carries symbols already normalised (tradebot.common.symbols.normalise_symbol).
SourceName = Annotated[str, StringConstraints(pattern=SOURCE_PATTERN)]
Symbol = Annotated[str, StringConstraints(pattern=SYMBOL_PATTERN)]
PositiveFloat = Annotated[float, Field(gt=0, allow_inf_nan=False)]
NonNegativeFloat = Annotated[float, Field(ge=0, allow_inf_nan=False)]


def new_id() -> str:
    return uuid.uuid4().hex


class Side(StrEnum):
    BUY = "buy"
    SELL = "sell"


class OrderStatus(StrEnum):
    FILLED = "filled"
    REJECTED = "rejected"


class Message(BaseModel):
    """Base of every wire model; `kind` names it inside a stream entry."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    kind: ClassVar[str]


TickType = Literal["trade", "quote", "bar"]


class PriceTick(Message):
    """A market event of one symbol: a trade, a quote (priced at its midpoint) or a closed
    1-minute bar (priced at its close). Strategies declare which of these they consume."""

    kind: ClassVar[str] = "tick"

    id: str = Field(default_factory=new_id, min_length=1, max_length=64)
    source: SourceName
    symbol: Symbol
    time: datetime
    price: PositiveFloat
    size: NonNegativeFloat = 0
    bid: NonNegativeFloat | None = None
    ask: NonNegativeFloat | None = None
    volume: NonNegativeFloat = 0
    type: TickType = "trade"


class TradeSignal(Message):
    kind: ClassVar[str] = "signal"

    id: str = Field(min_length=1, max_length=128)
    time: datetime
    strategy: str = Field(min_length=1, max_length=64)
    symbol: Symbol
    side: Side
    strength: float = Field(ge=0, le=1)
    reason: str = Field(max_length=500)
    price: PositiveFloat
    source: SourceName
    tick_id: str
    tick_time: datetime
    atr: NonNegativeFloat | None = None
    """Average true range of the signal's bars when it fired (price units): the broker's stop distance."""


class Order(Message):
    kind: ClassVar[str] = "order"

    id: str
    signal_id: str
    time: datetime
    strategy: str
    symbol: Symbol
    side: Side
    quantity: NonNegativeFloat
    reference_price: PositiveFloat
    status: OrderStatus
    reason: str = ""


class Fill(Message):
    kind: ClassVar[str] = "fill"

    id: str
    order_id: str
    time: datetime
    symbol: Symbol
    side: Side
    quantity: PositiveFloat
    price: PositiveFloat
    fee: NonNegativeFloat
    slippage: float


class Position(Message):
    """A symbol's holding after the latest fill (quantity 0 once closed)."""

    kind: ClassVar[str] = "position"

    symbol: Symbol
    quantity: float
    average_price: NonNegativeFloat
    realized_pnl: float
    market_price: NonNegativeFloat
    unrealized_pnl: float
    time: datetime


WIRE_MODELS: dict[str, type[Message]] = {
    model.kind: model for model in (PriceTick, TradeSignal, Order, Fill, Position)
}
