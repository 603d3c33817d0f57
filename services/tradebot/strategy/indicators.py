"""Incremental indicators, O(1) per value, as msgspec structs (so a checkpoint is one encode).

Each one follows talipp's definitions exactly (tests/unit/test_indicators.py feeds
both the same series and compares every value); ours keep only the window they
need, where talipp keeps every input forever, and cost a fraction of the time.
"""

from __future__ import annotations

import math

from msgspec import Struct, field


class Window(Struct):
    """The last `size` values with their sum and sum of squares (a ring buffer)."""

    size: int
    values: list[float] = field(default_factory=list)
    head: int = 0
    total: float = 0.0
    total_sq: float = 0.0

    @property
    def full(self) -> bool:
        return len(self.values) == self.size

    def push(self, value: float) -> float | None:
        """Add a value; returns the one that left the window, if any."""
        values = self.values
        if len(values) < self.size:
            values.append(value)
            self.total += value
            self.total_sq += value * value
            return None
        old = values[self.head]
        values[self.head] = value
        self.head = (self.head + 1) % self.size
        if self.head == 0:  # once per lap, re-add from scratch so rounding never drifts
            self.total = math.fsum(values)
            self.total_sq = math.fsum(v * v for v in values)
        else:
            self.total += value - old
            self.total_sq += value * value - old * old
        return old

    def mean(self) -> float:
        return self.total / len(self.values)

    def stdev(self) -> float:
        """Population standard deviation (talipp's StdDev)."""
        mean = self.mean()
        return math.sqrt(max(0.0, self.total_sq / len(self.values) - mean * mean))


class Sma(Struct, tag=True):
    window: Window

    @classmethod
    def of(cls, period: int) -> Sma:
        return cls(Window(period))

    def push(self, value: float) -> float | None:
        self.window.push(value)
        return self.current()

    def current(self) -> float | None:
        """The average now (None while warming up)."""
        return self.window.mean() if self.window.full else None


class Ema(Struct, tag=True):
    """Seeded with the SMA of the first `period` values, then 2/(period+1) smoothing."""

    period: int
    count: int = 0
    seed: float = 0.0
    value: float | None = None

    def push(self, value: float) -> float | None:
        self.count += 1
        if self.value is not None:
            alpha = 2.0 / (self.period + 1.0)
            self.value = alpha * value + (1.0 - alpha) * self.value
        elif self.count < self.period:
            self.seed += value
        else:
            self.value = (self.seed + value) / self.period
        return self.value

    def current(self) -> float | None:
        return self.value


class Rsi(Struct):
    """Wilder's RSI: averages seeded over the first `period` changes, then smoothed."""

    period: int
    previous: float | None = None
    changes: int = 0
    average_gain: float = 0.0
    average_loss: float = 0.0

    def push(self, value: float) -> float | None:
        previous, self.previous = self.previous, value
        if previous is None:
            return None
        change = value - previous
        gain, loss = (change, 0.0) if change > 0 else (0.0, -change)
        self.changes += 1
        period = self.period
        if self.changes <= period:
            self.average_gain += gain / period
            self.average_loss += loss / period
            if self.changes < period:
                return None
        else:
            self.average_gain = (self.average_gain * (period - 1) + gain) / period
            self.average_loss = (self.average_loss * (period - 1) + loss) / period
        return self.current()

    def current(self) -> float | None:
        """The RSI now (None until `period` changes were seen)."""
        if self.changes < self.period:
            return None
        if self.average_loss == 0:
            return 100.0
        return 100.0 - 100.0 / (1.0 + self.average_gain / self.average_loss)


class Bands(Struct):
    """Bollinger bands: SMA ± `width` population standard deviations."""

    window: Window
    width: float

    @classmethod
    def of(cls, period: int, width: float) -> Bands:
        return cls(Window(period), width)

    def push(self, value: float) -> tuple[float, float, float] | None:
        """(lower, middle, upper) once the window is full."""
        self.window.push(value)
        return self.current()

    def current(self) -> tuple[float, float, float] | None:
        if not self.window.full:
            return None
        middle, spread = self.window.mean(), self.width * self.window.stdev()
        return middle - spread, middle, middle + spread


class Macd(Struct):
    """MACD line (fast EMA − slow EMA), its signal EMA and the histogram."""

    fast: Ema
    slow: Ema
    signal: Ema

    @classmethod
    def of(cls, fast: int, slow: int, signal: int) -> Macd:
        return cls(Ema(fast), Ema(slow), Ema(signal))

    def push(self, value: float) -> tuple[float, float | None]:
        """(macd, signal) once both averages exist; the signal needs `signal` MACD values."""
        fast, slow = self.fast.push(value), self.slow.push(value)
        if fast is None or slow is None:
            return math.nan, None
        macd = fast - slow
        return macd, self.signal.push(macd)


class Atr(Struct):
    """Average true range, Wilder-smoothed after a simple average of the first `period`."""

    period: int
    count: int = 0
    previous_close: float | None = None
    total: float = 0.0
    value: float | None = None

    def push(self, high: float, low: float, close: float) -> float | None:
        previous = self.previous_close
        true_range = (
            high - low if previous is None else max(high - low, abs(high - previous), abs(low - previous))
        )
        self.previous_close = close
        self.count += 1
        if self.value is not None:
            self.value = (self.value * (self.period - 1) + true_range) / self.period
        elif self.count < self.period:
            self.total += true_range
        else:
            self.value = (self.total + true_range) / self.period
        return self.value


class Extreme(Struct):
    """The maximum (or minimum) of the last `period` values: a monotonic queue, amortised O(1)."""

    period: int
    maximum: bool = True
    count: int = 0
    positions: list[int] = field(default_factory=list)
    values: list[float] = field(default_factory=list)
    head: int = 0

    def push(self, value: float) -> float | None:
        """Add a value; the extreme of the window once `period` values have been seen."""
        positions, values = self.positions, self.values
        sign = 1.0 if self.maximum else -1.0
        while len(values) > self.head and sign * values[-1] <= sign * value:
            values.pop()
            positions.pop()
        positions.append(self.count)
        values.append(value)
        self.count += 1
        oldest = self.count - self.period
        while positions[self.head] < oldest:
            self.head += 1
        if self.head > 32 and self.head * 2 > len(values):  # drop the consumed front now and then
            del positions[: self.head], values[: self.head]
            self.head = 0
        return values[self.head] if self.count >= self.period else None
