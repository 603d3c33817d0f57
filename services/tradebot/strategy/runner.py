"""Ticks in, signals out: bar building, the strategies and their state for a set of symbols. Pure.

The live service runs one runner per tick shard it owns; a backtest runs one for
every symbol. Same ticks in the same order give the same signals, whichever
drives it: nothing here reads a clock. Time comes in two ways:

* event time — each tick's own time, the runner's clock (`event_clock`);
* `wall` — seconds the driver says have passed since the last tick arrived
  (live only). The clock used to close a quiet symbol's bar is the newest event
  time plus that idle time, so a fast replay of old ticks closes bars by event
  time exactly as a backtest does, and a quiet live market still closes them.

A signal's id names strategy, source, symbol and the bar (or tick) that fired
it, so a replay re-emits the same ids and execution keeps each once.
"""

from __future__ import annotations

import hashlib
import heapq
from collections.abc import Iterable
from typing import Any

import msgspec
from msgspec import Struct, field

from tradebot.common.models import PriceTick, TradeSignal
from tradebot.strategy.bars import (
    TIMEFRAMES,
    Bar,
    BarBuilder,
    epoch_us,
    from_epoch_us,
    provider_bar,
    tick_bar,
)
from tradebot.strategy.base import Decision, Strategy, input_seconds
from tradebot.strategy.indicators import Atr

ATR_PERIOD = 14
"""Bars in the average true range every signal carries (Wilder's standard)."""
ATR_INPUT = "1m"
"""Bars whose ATR a signal of a trade or quote strategy carries."""
MAX_SIGNAL_ID = 128


class Book(Struct):
    """One symbol: its open bars, its ATRs and each strategy's state (by strategy index)."""

    builders: dict[str, BarBuilder] = field(default_factory=dict)
    atrs: dict[str, Atr] = field(default_factory=dict)
    states: list[Any] = field(default_factory=list)


class _BookShape(Struct):
    builders: dict[str, BarBuilder]
    atrs: dict[str, Atr]


class Checkpoint(Struct):
    """A runner's state and the stream position it covers; strategies' states by fingerprint."""

    position: str
    event_clock: int
    books: dict[str, _BookShape]
    strategies: dict[str, bytes]


def signal_id(strategy: str, bar: Bar, input_name: str) -> str:
    """`strategy:source:symbol:input:bar start` (or `…:trades:tick time:tick id` for a tick)."""
    stamp = f"{bar.start // 1_000_000}" if bar.seconds else f"{bar.start}:{bar.last_tick_id}"
    text = f"{strategy}:{bar.source}:{bar.symbol}:{input_name}:{stamp}"
    if len(text) <= MAX_SIGNAL_ID:
        return text
    digest = hashlib.blake2b(text.encode(), digest_size=12).hexdigest()
    return f"{text[: MAX_SIGNAL_ID - len(digest) - 1]}:{digest}"


def make_signal(strategy: Strategy, decision: Decision, bar: Bar, atr: float | None) -> TradeSignal:
    end = bar.end if bar.seconds else bar.last_time
    return TradeSignal(
        id=signal_id(strategy.name, bar, strategy.input),
        time=from_epoch_us(end),
        strategy=strategy.name,
        symbol=bar.symbol,
        side=decision.side,
        strength=decision.strength,
        reason=decision.reason[:500],
        price=bar.close,
        source=bar.source,
        tick_id=bar.last_tick_id,
        tick_time=from_epoch_us(bar.last_time),
        atr=atr,
    )


class StrategyRunner:
    """Runs `strategies` over the ticks of the symbols it is given."""

    def __init__(self, strategies: list[Strategy], grace_seconds: float) -> None:
        self.strategies = strategies
        self.grace = int(grace_seconds * 1_000_000)
        self.by_input: dict[str, list[int]] = {}
        for index, strategy in enumerate(strategies):
            self.by_input.setdefault(strategy.input, []).append(index)
        self.timeframes = sorted(
            {ATR_INPUT, *(i for i in self.by_input if i in TIMEFRAMES)}, key=input_seconds
        )
        self.books: dict[str, Book] = {}
        self.event_clock = 0
        self._idle_since: float | None = None
        self._deadlines: list[tuple[int, str, str, int]] = []
        self.ticks = 0

    # ------------------------------------------------------------------ evaluation
    def on_tick(self, tick: PriceTick, wall: float | None = None) -> list[TradeSignal]:
        """Evaluate one tick; `wall` is the driver's clock (seconds) when it arrived, if live."""
        self.ticks += 1
        time = epoch_us(tick.time)
        signals: list[TradeSignal] = []
        if time > self.event_clock:
            self.event_clock = time
            self._close_due(time, signals)
        self._idle_since = wall
        book = self.books.get(tick.symbol)
        if book is None:
            book = self.books[tick.symbol] = self._new_book()
        kind = tick.type
        if kind == "trade":
            for name in self.timeframes:
                builder = book.builders[name]
                before = builder.current
                closed = builder.add(tick)
                if closed is not None:
                    self._on_bar(book, name, closed, signals)
                if builder.current is not before and builder.current is not None:
                    opened = builder.current
                    heapq.heappush(
                        self._deadlines, (opened.end + self.grace, tick.symbol, name, opened.start)
                    )
            if "trades" in self.by_input:
                self._evaluate(book, "trades", tick_bar(tick), self._atr(book, ATR_INPUT), signals)
        elif kind == "quote":
            if "quotes" in self.by_input:
                self._evaluate(book, "quotes", tick_bar(tick), self._atr(book, ATR_INPUT), signals)
        elif kind == "bar" and "provider_1m" in self.by_input:
            self._on_bar(book, "provider_1m", provider_bar(tick), signals)
        return signals

    def on_clock(self, wall: float) -> list[TradeSignal]:
        """Close the bars of quiet symbols whose grace delay has passed (live driver, idle shard)."""
        signals: list[TradeSignal] = []
        if self._idle_since is not None:
            idle = max(0.0, wall - self._idle_since)
            self._close_due(self.event_clock + int(idle * 1_000_000), signals)
        return signals

    def resume(self, wall: float) -> None:
        """Start the idle clock at `wall` (after a warm start, so a quiet shard still closes bars)."""
        self._idle_since = wall

    def finish(self) -> list[TradeSignal]:
        """Close every open bar (the end of a backtest's data)."""
        return self.close_until(2**62)

    def close_until(self, time: int) -> list[TradeSignal]:
        """Close the open bars that end by `time` (epoch µs): the data up to it is complete."""
        signals: list[TradeSignal] = []
        self._close_due(time + self.grace, signals)
        return signals

    def _new_book(self) -> Book:
        book = Book(states=[strategy.new_state() for strategy in self.strategies])
        for name in self.timeframes:
            book.builders[name] = BarBuilder(TIMEFRAMES[name])
        for name in (*self.timeframes, *(["provider_1m"] if "provider_1m" in self.by_input else [])):
            book.atrs[name] = Atr(ATR_PERIOD)
        return book

    @staticmethod
    def _atr(book: Book, name: str) -> float | None:
        atr = book.atrs.get(name)
        return atr.value if atr is not None else None

    def _on_bar(self, book: Book, name: str, bar: Bar, signals: list[TradeSignal]) -> None:
        atr = book.atrs[name].push(bar.high, bar.low, bar.close)
        if name in self.by_input:
            self._evaluate(book, name, bar, atr, signals)

    def _evaluate(
        self, book: Book, name: str, bar: Bar, atr: float | None, signals: list[TradeSignal]
    ) -> None:
        for index in self.by_input[name]:
            strategy = self.strategies[index]
            decision = strategy.decide(book.states[index], bar)
            if decision is not None:
                signals.append(make_signal(strategy, decision, bar, atr))

    def _close_due(self, clock: int, signals: list[TradeSignal]) -> None:
        deadlines = self._deadlines
        while deadlines and deadlines[0][0] <= clock:
            _, symbol, name, start = heapq.heappop(deadlines)
            book = self.books.get(symbol)
            builder = book.builders.get(name) if book is not None else None
            if builder is None or builder.current is None or builder.current.start != start:
                continue  # closed by a trade meanwhile
            closed = builder.close_if_due(clock, self.grace)
            if closed is not None and book is not None:
                self._on_bar(book, name, closed, signals)

    # ------------------------------------------------------------------ checkpoints
    def checkpoint(self, position: str) -> bytes:
        """The whole state as bytes, with the stream position it covers."""
        strategies = {}
        for index, strategy in enumerate(self.strategies):
            states = {symbol: book.states[index] for symbol, book in self.books.items()}
            strategies[strategy.fingerprint()] = msgspec.msgpack.encode(states)
        books = {symbol: _BookShape(book.builders, book.atrs) for symbol, book in self.books.items()}
        return msgspec.msgpack.encode(Checkpoint(position, self.event_clock, books, strategies))

    def restore(self, data: bytes) -> tuple[str, list[str]]:
        """Load a checkpoint; returns its position and the strategies that start cold.

        A strategy whose parameters changed since the checkpoint starts from a fresh state
        (its old state would be wrong); every other one continues exactly.
        """
        checkpoint = msgspec.msgpack.decode(data, type=Checkpoint)
        self.event_clock = checkpoint.event_clock
        self.books = {s: Book(shape.builders, shape.atrs, []) for s, shape in checkpoint.books.items()}
        cold = []
        for strategy in self.strategies:
            raw = checkpoint.strategies.get(strategy.fingerprint())
            states: dict[str, Any] = {}
            if raw is None:
                cold.append(strategy.name)
            else:
                states = msgspec.msgpack.decode(raw, type=dict[str, strategy.State])  # type: ignore[name-defined]
            for symbol, book in self.books.items():
                state = states.get(symbol)
                book.states.append(strategy.new_state() if state is None else state)
        for symbol, book in self.books.items():
            self._complete(book)
            for name, builder in book.builders.items():
                if builder.current is not None:
                    entry = (builder.current.end + self.grace, symbol, name, builder.current.start)
                    self._deadlines.append(entry)
        heapq.heapify(self._deadlines)
        return checkpoint.position, cold

    def _complete(self, book: Book) -> None:
        """Bar builders and ATRs for timeframes added since the checkpoint."""
        fresh = self._new_book()
        for name in self.timeframes:
            book.builders.setdefault(name, fresh.builders[name])
        for name, atr in fresh.atrs.items():
            book.atrs.setdefault(name, atr)


def run_all(runner: StrategyRunner, ticks: Iterable[PriceTick]) -> list[TradeSignal]:
    """Every signal of `ticks` in order, closing the last bars at the end (tests, backtests)."""
    signals = [signal for tick in ticks for signal in runner.on_tick(tick)]
    return signals + runner.finish()
