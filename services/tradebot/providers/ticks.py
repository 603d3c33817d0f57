"""Provider events to price ticks: pure functions shared by live streams, gap fills and backfill.

A tick's id is derived from the provider's own event identity (trade id or
sequence number, else the event kind), and its time from the provider's
timestamp truncated the same way whatever the transport. So the same trade seen
on the WebSocket and again in the REST history becomes the same row key
(symbol, time, id), and storage keeps it once.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from itertools import takewhile

from tradebot.common.models import PriceTick

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def from_unix_ns(nanoseconds: int) -> datetime:
    """Nanoseconds since the epoch, floored to microseconds (what PostgreSQL keeps)."""
    return EPOCH + timedelta(microseconds=nanoseconds // 1_000)


def from_unix_ms(milliseconds: int) -> datetime:
    return EPOCH + timedelta(milliseconds=milliseconds)


def parse_rfc3339(text: str) -> datetime:
    """'2024-01-02T14:30:00.123456789Z' (Alpaca REST) to a UTC datetime floored to microseconds."""
    text = text.strip()
    if text.endswith("Z"):
        text = text[:-1] + "+00:00"
    head, dot, rest = text.partition(".")
    if dot:
        digits = "".join(takewhile(str.isdigit, rest))
        text = f"{head}.{(digits + '000000')[:6]}{rest[len(digits) :]}"
    return datetime.fromisoformat(text).astimezone(UTC)


def to_rfc3339(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def trade_tick(
    source: str, symbol: str, time: datetime, price: float, size: float, trade_id: object
) -> PriceTick:
    """A trade; `trade_id` is the provider's id (Alpaca) or sequence number (Polygon)."""
    return PriceTick(
        id=f"t{trade_id}", source=source, symbol=symbol, time=time, price=price, size=size, volume=size
    )


def epoch_micros(moment: datetime) -> int:
    """Microseconds since the epoch: the identity of an event that has no id of its own."""
    return (moment - EPOCH) // timedelta(microseconds=1)


def quote_tick(
    source: str, symbol: str, time: datetime, bid: float, ask: float, sequence: object = None
) -> PriceTick | None:
    """A quote becomes a tick at the midpoint (no size: nothing traded); None if one-sided.

    Its id is the provider's sequence number, else its time: two quotes never share one."""
    if bid <= 0 or ask <= 0:
        return None
    return PriceTick(
        id=f"q{sequence if sequence is not None else epoch_micros(time)}",
        source=source,
        symbol=symbol,
        time=time,
        price=round((bid + ask) / 2, 6),
        bid=bid,
        ask=ask,
        type="quote",
    )


def bar_tick(source: str, symbol: str, time: datetime, close: float, volume: float) -> PriceTick:
    """A closed 1-minute bar (at its start time): its close, with the bar's volume but no trade size."""
    return PriceTick(
        id=f"b1m{epoch_micros(time) // 1_000_000}",
        source=source,
        symbol=symbol,
        time=time,
        price=close,
        volume=volume,
        type="bar",
    )
