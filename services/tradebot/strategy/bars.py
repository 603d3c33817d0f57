"""Bars built from trades by event time, with storage's OHLCV rules. Pure.

A trade joins the bar of its time bucket: open is the earliest trade, close the
latest (a tie goes to the later arrival), high/low the extremes, volume the sum
of sizes, `trades` the count — the rules of storage's 1-minute rollup, so a
strategy sees the bars the history API serves. A bar closes when a trade of a
later bucket arrives, or when the clock passes its end by the grace delay (a
quiet symbol). A trade for a bucket already closed is late: it is counted and
left out, as no strategy can take back what it decided on that bar.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from msgspec import Struct

from tradebot.common.models import PriceTick

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
MICROSECOND = timedelta(microseconds=1)
TIMEFRAMES: dict[str, int] = {"1m": 60, "5m": 300, "15m": 900, "1h": 3600}
"""Bar timeframes a strategy can ask for, in seconds."""


def epoch_us(moment: datetime) -> int:
    """Microseconds since the epoch, exactly (floats would round)."""
    return (moment - EPOCH) // MICROSECOND


def from_epoch_us(micros: int) -> datetime:
    return EPOCH + timedelta(microseconds=micros)


class Bar(Struct):
    """One symbol's OHLCV over [start, start + seconds); times in epoch microseconds."""

    symbol: str
    source: str
    start: int
    seconds: int
    open: float
    high: float
    low: float
    close: float
    volume: float
    trades: int
    first_time: int
    last_time: int
    last_tick_id: str

    @property
    def end(self) -> int:
        return self.start + self.seconds * 1_000_000

    @classmethod
    def of_tick(cls, tick: PriceTick, start: int, seconds: int, time: int) -> Bar:
        price = tick.price
        return cls(
            tick.symbol, tick.source, start, seconds, price, price, price, price,
            tick.size, 1, time, time, tick.id,
        )  # fmt: skip

    def add(self, tick: PriceTick, time: int) -> None:
        """Fold one trade of this bucket in (storage's rules)."""
        price = tick.price
        if time < self.first_time:
            self.first_time, self.open = time, price
        if time >= self.last_time:
            self.last_time, self.close, self.last_tick_id = time, price, tick.id
        if price > self.high:
            self.high = price
        if price < self.low:
            self.low = price
        self.volume += tick.size
        self.trades += 1


def provider_bar(tick: PriceTick) -> Bar:
    """A provider's closed 1-minute bar tick as a bar (its time is the bar's start).

    The tick carries the close and volume only, so open, high and low are the close.
    """
    time = epoch_us(tick.time)
    price = tick.price
    return Bar(
        tick.symbol, tick.source, time, 60, price, price, price, price, tick.volume, 0, time, time, tick.id
    )


def tick_bar(tick: PriceTick) -> Bar:
    """One trade or quote as a bar of its own, for strategies that evaluate every tick."""
    time = epoch_us(tick.time)
    return Bar.of_tick(tick, time, 0, time)


class BarBuilder(Struct):
    """The open bar of one symbol at one timeframe."""

    seconds: int
    current: Bar | None = None
    closed_end: int = 0
    """End of the last bar closed by the clock: trades before it are late."""
    late_trades: int = 0

    def add(self, tick: PriceTick) -> Bar | None:
        """Fold a trade in; returns the bar it closed, if it opened a later bucket."""
        time = epoch_us(tick.time)
        width = self.seconds * 1_000_000
        start = time - time % width
        current = self.current
        if current is None:
            if start < self.closed_end:
                self.late_trades += 1
                return None
            self.current = Bar.of_tick(tick, start, self.seconds, time)
            return None
        if start == current.start:
            current.add(tick, time)
            return None
        if start < current.start:
            self.late_trades += 1
            return None
        self.current = Bar.of_tick(tick, start, self.seconds, time)
        return current

    def close_if_due(self, clock: int, grace: int) -> Bar | None:
        """Close the open bar when `clock` has passed its end by `grace` (microseconds)."""
        current = self.current
        if current is not None and clock >= current.end + grace:
            self.current = None
            self.closed_end = current.end
            return current
        return None
