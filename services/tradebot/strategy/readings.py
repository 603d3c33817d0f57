"""What the running strategies see now: per symbol, each strategy's indicators and last signal.

Published to `strategy:readings` (and the strategies' parameters to `strategy:config`)
every READINGS_SECONDS by the replica that owns the symbols, so the dashboard draws
the strategy's own moving averages and bands, not a second computation of them.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterable
from typing import Any

import orjson
from redis.asyncio import Redis

from tradebot.common import keys
from tradebot.common.models import TradeSignal
from tradebot.strategy.base import Strategy
from tradebot.strategy.runner import StrategyRunner

READINGS_SECONDS = 2.0
LastSignals = dict[str, dict[str, dict[str, Any]]]
"""symbol -> strategy -> {side, time, reason} of its newest signal."""


def strategy_config(strategies: Iterable[Strategy]) -> dict[str, dict[str, Any]]:
    return {
        s.name: {"summary": s.summary, "input": s.input, "params": s.params.model_dump(mode="json"),
                 "overlays": list(s.overlays)}
        for s in strategies
    }  # fmt: skip


def remember(last: LastSignals, signals: Iterable[TradeSignal]) -> None:
    for signal in signals:
        last.setdefault(signal.symbol, {})[signal.strategy] = {
            "side": signal.side.value, "time": signal.time.isoformat(), "reason": signal.reason,
        }  # fmt: skip


def _finite(value: float | None) -> float | None:
    return round(value, 6) if value is not None and math.isfinite(value) else None


def readings(runner: StrategyRunner, last: LastSignals, now: float) -> dict[str, dict[str, Any]]:
    """Pure: symbol -> {strategy: {values, last_signal}}, for every symbol the runner has seen."""
    found = {}
    for symbol, book in runner.books.items():
        strategies = {}
        for strategy, state in zip(runner.strategies, book.states, strict=False):
            values = {name: _finite(v) for name, v in strategy.readings(state).items()}
            strategies[strategy.name] = {
                "values": values,
                "last_signal": last.get(symbol, {}).get(strategy.name),
            }
        found[symbol] = strategies
    return found


class ReadingsPublisher:
    """Writes the current readings of every symbol, and appends a point to a symbol's history
    only when its values changed since the last one."""

    def __init__(self) -> None:
        self.published: dict[str, dict[str, Any]] = {}  # symbol -> values last appended

    async def publish(self, redis: Redis, runners: Iterable[StrategyRunner], last: LastSignals) -> None:
        now = round(time.time(), 3)
        current: dict[str, dict[str, Any]] = {}
        for runner in runners:
            current.update(readings(runner, last, now))
        if not current:
            return
        pipe = redis.pipeline(transaction=False)
        pipe.hset(
            keys.STRATEGY_READINGS,
            mapping={s: orjson.dumps({"time": now, "strategies": v}) for s, v in current.items()},
        )
        for symbol, strategies in current.items():
            values = {name: reading["values"] for name, reading in strategies.items()}
            if self.published.get(symbol) != values and any(
                v is not None for reading in values.values() for v in reading.values()
            ):
                self.published[symbol] = values
                key = keys.readings_history_key(symbol)
                pipe.rpush(key, orjson.dumps([now, values]))
                pipe.ltrim(key, -keys.READINGS_HISTORY, -1)
        await pipe.execute()


async def publish_config(redis: Redis, strategies: Iterable[Strategy]) -> None:
    await redis.set(keys.STRATEGY_CONFIG, orjson.dumps(strategy_config(strategies)))
