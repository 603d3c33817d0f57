"""The data that flows between services: ticks, signals, orders, fills, positions.

Models are immutable msgspec Structs, validated when they are made and when they
are decoded; every stream entry carries them in the versioned wire encoding of
`tradebot.common.wire`. msgspec checks the declared constraints in C while it
decodes, and its Structs are invisible to the garbage collector (`gc=False`):
at tens of thousands of ticks a second, pydantic models cost four times the CPU
and half of it was the collector walking them (bench/stages.py).

A model made in Python is checked against the same declarations (and refused
with `InvalidMessage`, a ValueError), so NaN, ±Inf, a NUL character or a
malformed symbol never leaves the process that made it.
"""

from __future__ import annotations

import math
import re
import sys
import uuid
from datetime import datetime
from enum import StrEnum
from operator import attrgetter
from typing import Annotated, Any, ClassVar, Literal, Self, cast

import msgspec

SOURCE_PATTERN = r"^[a-z][a-z0-9_]{0,30}$"
SYMBOL_PATTERN = r"^[A-Z][A-Z0-9]{0,9}(?:[.\-/][A-Z0-9]{1,5})?$"
_LARGEST = sys.float_info.max


class InvalidMessage(ValueError):
    """A model was given a value its declaration refuses; the message names the field."""


def validate_source_name(name: str) -> str:
    """A data source name is also part of a table name, so only [a-z0-9_] is allowed."""
    if not re.match(SOURCE_PATTERN, name):
        raise ValueError(f"{name!r} is not a valid source name (lower-case letters, digits, _)")
    return name


# Every number is finite: the bounds refuse ±Inf, and NaN fails every comparison.
Number = Annotated[float, msgspec.Meta(ge=-_LARGEST, le=_LARGEST)]
PositiveFloat = Annotated[float, msgspec.Meta(gt=0, le=_LARGEST)]
NonNegativeFloat = Annotated[float, msgspec.Meta(ge=0, le=_LARGEST)]
SourceName = Annotated[str, msgspec.Meta(max_length=31)]  # and SOURCE_PATTERN, see Message
Symbol = Annotated[str, msgspec.Meta(max_length=16)]  # and SYMBOL_PATTERN, see Message


def new_id() -> str:
    return uuid.uuid4().hex


class Side(StrEnum):
    BUY = "buy"
    SELL = "sell"


class OrderStatus(StrEnum):
    """An order's final state (the `orders` stream carries each order once, when it is final).

    The simulator's orders fill or are rejected; a broker's may also be canceled or
    expire, after part of them filled (`quantity` is then what filled)."""

    FILLED = "filled"
    REJECTED = "rejected"
    CANCELED = "canceled"
    EXPIRED = "expired"


class _Patterns:
    """A pattern checked once per distinct value (a market has few symbols and sources)."""

    def __init__(self, pattern: str) -> None:
        self.pattern = pattern
        self.match = re.compile(pattern).match
        self.seen: set[str] = set()

    def valid(self, value: str) -> bool:
        if value in self.seen:
            return True
        if not self.match(value):
            return False
        if len(self.seen) < 100_000:
            self.seen.add(value)
        return True


_PATTERNED = {"source": _Patterns(SOURCE_PATTERN), "symbol": _Patterns(SYMBOL_PATTERN)}


class _Checked(msgspec.StructMeta):
    """Makes every model in Python the way a decoder does: checked in C against its declaration
    (an int given for a float becomes a float). Decoding does not come through here."""

    def __call__(cls, **fields: Any) -> Any:
        kind = getattr(cls, "kind", cls.__name__)
        try:
            message = msgspec.convert(fields, cls, strict=False)
        except msgspec.ValidationError as error:
            raise InvalidMessage(f"invalid {kind}: {_explain(error, fields)}") from None
        problem = text_problem(message)
        if problem:
            raise InvalidMessage(f"invalid {kind}: {problem}")
        return message

    def prechecked(cls, **fields: Any) -> Any:
        """A model from values its maker has already checked, all at once (as SyntheticMarket
        does with numpy): the checks above cost more than the rest of making a tick."""
        return super().__call__(**fields)


def _explain(error: msgspec.ValidationError, fields: dict[str, Any]) -> str:
    """msgspec's words, or plainer ones for a number that is not finite."""
    for name, value in fields.items():
        if isinstance(value, float) and not math.isfinite(value):
            return f"{name!r} must be a finite number, not {value}"
    return str(error)


class Message(
    msgspec.Struct, metaclass=_Checked, frozen=True, kw_only=True, forbid_unknown_fields=True, gc=False
):
    """Base of every wire model; `kind` names it inside a stream entry.

    The `model_*` methods are the pydantic ones callers already use, kept so the
    models could change implementation without touching them.
    """

    kind: ClassVar[str]
    text_fields: ClassVar[tuple[str, ...]] = ()  # set below, once the classes exist
    model_fields: ClassVar[tuple[str, ...]] = ()

    # ------------------------------------------------------------------ pydantic-style helpers
    def model_dump(self, mode: Literal["python", "json"] = "python") -> dict[str, Any]:
        return msgspec.to_builtins(self) if mode == "json" else msgspec.structs.asdict(self)

    def model_dump_json(self) -> str:
        return msgspec.json.encode(self).decode()

    def model_copy(self, update: dict[str, Any] | None = None) -> Self:
        return type(self)(**{**msgspec.structs.asdict(self), **(update or {})})

    @classmethod
    def model_validate_json(cls, raw: bytes | str) -> Self:
        from tradebot.common.wire import decode_json

        return decode_json(cls, raw)  # type: ignore[return-value]


def text_problem(message: Message) -> str | None:
    """What is wrong with a message's text fields (a NUL character, a malformed symbol), if anything."""
    for name in message.text_fields:
        value = getattr(message, name)
        if value is None:
            continue  # an optional text left out
        if not isinstance(value, str):
            return None  # the type check names it
        if "\x00" in value:
            return f"{name!r} contains a NUL character"
        patterns = _PATTERNED.get(name)
        if patterns is not None and not patterns.valid(value):
            return f"{name!r} should match pattern {patterns.pattern!r}: {value!r}"
    return None


def texts_valid(model: type[Message], messages: list[Message], raw: bytes) -> bool:
    """Whether every message of a decoded batch passes `text_problem`, checked per distinct value.

    JSON carries a NUL only as the escape \\u0000, so one scan of the raw bytes answers for all.
    """
    if b"\\u0000" in raw:
        return False
    for name, patterns in _PATTERNED.items():
        if name in model.model_fields:
            values = set(map(attrgetter(name), messages))
            values.discard(None)  # an optional symbol left out
            if not all(map(patterns.valid, values)):
                return False
    return True


TickType = Literal["trade", "quote", "bar"]


class PriceTick(Message, frozen=True, kw_only=True):
    """A market event of one symbol: a trade, a quote (priced at its midpoint) or a closed
    1-minute bar (priced at its close). Strategies declare which of these they consume."""

    kind: ClassVar[str] = "tick"

    id: Annotated[str, msgspec.Meta(min_length=1, max_length=64)] = msgspec.field(default_factory=new_id)
    source: SourceName
    symbol: Symbol
    time: datetime
    price: PositiveFloat
    size: NonNegativeFloat = 0.0
    bid: NonNegativeFloat | None = None
    ask: NonNegativeFloat | None = None
    volume: NonNegativeFloat = 0.0
    type: TickType = "trade"


class TradeSignal(Message, frozen=True, kw_only=True):
    kind: ClassVar[str] = "signal"

    id: Annotated[str, msgspec.Meta(min_length=1, max_length=128)]
    time: datetime
    strategy: Annotated[str, msgspec.Meta(min_length=1, max_length=64)]
    symbol: Symbol
    side: Side
    strength: Annotated[float, msgspec.Meta(ge=0, le=1)]
    reason: Annotated[str, msgspec.Meta(max_length=500)]
    price: PositiveFloat
    source: SourceName
    tick_id: str
    tick_time: datetime
    atr: NonNegativeFloat | None = None
    """Average true range of the signal's bars when it fired (price units): the broker's stop distance."""


class Order(Message, frozen=True, kw_only=True):
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


class Fill(Message, frozen=True, kw_only=True):
    kind: ClassVar[str] = "fill"

    id: str
    order_id: str
    time: datetime
    symbol: Symbol
    side: Side
    quantity: PositiveFloat
    price: PositiveFloat
    fee: NonNegativeFloat
    slippage: Number


class Position(Message, frozen=True, kw_only=True):
    """A symbol's holding after the latest fill (quantity 0 once closed)."""

    kind: ClassVar[str] = "position"

    symbol: Symbol
    quantity: Number
    average_price: NonNegativeFloat
    realized_pnl: Number
    market_price: NonNegativeFloat
    unrealized_pnl: Number
    time: datetime


ControlAction = Literal["pause", "resume", "close", "flatten", "reset"]


class Control(Message, frozen=True, kw_only=True):
    """An operator's command to the pipeline, carried on the `controls` stream to execution.

    pause: no new positions (exits and sells still run); resume: entries again; close: sell
    `symbol`'s position at the next trade; flatten: close every position and cancel queued
    buys; reset: the paper account back to STARTING_CASH.
    """

    kind: ClassVar[str] = "control"

    id: Annotated[str, msgspec.Meta(min_length=1, max_length=64)] = msgspec.field(default_factory=new_id)
    time: datetime
    action: ControlAction
    symbol: Symbol | None = None
    actor: Annotated[str, msgspec.Meta(max_length=200)] = ""
    reason: Annotated[str, msgspec.Meta(max_length=500)] = ""


def _is_text(kind: msgspec.inspect.Type) -> bool:
    """A text field, or an optional one (`str | None`)."""
    if isinstance(kind, msgspec.inspect.UnionType):
        return any(isinstance(t, msgspec.inspect.StrType) for t in kind.types)
    return isinstance(kind, msgspec.inspect.StrType)


WIRE_MODELS: dict[str, type[Message]] = {
    model.kind: model for model in (PriceTick, TradeSignal, Order, Fill, Position, Control)
}
for _model in WIRE_MODELS.values():
    _model.model_fields = _model.__struct_fields__
    _fields = cast(msgspec.inspect.StructType, msgspec.inspect.type_info(_model)).fields
    _model.text_fields = tuple(f.name for f in _fields if _is_text(f.type))
