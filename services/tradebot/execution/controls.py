"""Operator controls in the execution service: what pause, resume, close, flatten and reset do.

Controls arrive on the `controls` stream (the API publishes them) and are decided in
the same optimistic transaction as the signals and ticks of a batch, recorded in
`execution:processed_signals` by their id: a control delivered twice acts once, and
a crash never leaves an account half reset.

A close is a market sell queued like a strategy's: it fills at the next trade of the
symbol, through the same broker, costs and stream of fills; exits keep running while
trading is paused (a pause only stops new positions).
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

import orjson
from redis.asyncio.client import Pipeline

from tradebot.common import keys
from tradebot.common.bus import Delivery, Publisher
from tradebot.common.models import Control, Position, Side
from tradebot.execution.portfolio import PendingOrder, Portfolio

log = logging.getLogger(__name__)


def close_position(portfolio: Portfolio, symbol: str, control: Control, why: str) -> bool:
    """Queue a market sell of `symbol`'s whole position and drop its queued buys; False when flat."""
    queue = [o for o in portfolio.pending.get(symbol, []) if o.side is Side.SELL]
    holding = portfolio.holdings.get(symbol)
    if holding is None or holding.quantity <= 0:
        _set_queue(portfolio, symbol, queue)
        return False
    if not any(o.signal_id.startswith("control:") for o in queue):
        queue.append(
            PendingOrder(
                signal_id=f"control:{control.id}:{symbol}",
                strategy=holding.strategy or "operator",
                symbol=symbol,
                side=Side.SELL,
                reference_price=holding.market_price or holding.average_price,
                signal_time=control.time,
                tick_id="",
                tick_time=control.time,
                armed=True,  # the next trade fills it
                reason=why,
            )
        )
    _set_queue(portfolio, symbol, queue)
    return True


def _set_queue(portfolio: Portfolio, symbol: str, queue: list[PendingOrder]) -> None:
    if queue:
        portfolio.pending[symbol] = queue
    else:
        portfolio.pending.pop(symbol, None)


def apply_control(
    portfolio: Portfolio, control: Control, starting_cash: float, now: datetime
) -> tuple[Portfolio, list[Position], str]:
    """Pure: the account after one control, the positions to publish, and what was done."""
    who = f" by {control.actor}" if control.actor else ""
    if control.action == "pause":
        portfolio.paused = True
        return portfolio, [], "trading paused: no new positions, exits still run"
    if control.action == "resume":
        portfolio.paused = False
        return portfolio, [], "trading resumed"
    if control.action == "close":
        symbol = control.symbol or ""
        if close_position(portfolio, symbol, control, f"closed by operator{who}"):
            return portfolio, [], f"{symbol} sells at its next trade"
        return portfolio, [], f"no open {symbol} position to close"
    if control.action == "flatten":
        closing = [
            symbol
            for symbol in sorted({*portfolio.holdings, *portfolio.pending})
            if close_position(portfolio, symbol, control, f"flattened by operator{who}")
        ]
        return portfolio, [], f"{len(closing)} positions sell at their next trade; queued buys cancelled"
    # reset: a fresh account; the stored positions of the old one are published flat
    flat = [
        Position(
            symbol=symbol, quantity=0.0, average_price=0.0, realized_pnl=0.0,
            market_price=holding.market_price, unrealized_pnl=0.0,
            time=max(now, holding.last_fill_time or now),
        )
        for symbol, holding in sorted(portfolio.holdings.items())
        if holding.quantity > 0
    ]  # fmt: skip
    fresh = Portfolio.opening(starting_cash)
    fresh.paused = portfolio.paused
    return fresh, flat, f"account reset to {starting_cash:,.2f} cash ({len(flat)} positions dropped)"


@dataclass
class ControlBatch:
    """The controls of one execution batch, decided; `commit` queues their effects in its MULTI."""

    portfolio: Portfolio
    deliveries: Sequence[Delivery] = ()
    applied: list[str] = field(default_factory=list)
    results: dict[str, bytes] = field(default_factory=dict)
    """control id -> JSON of what was done, for the audit trail."""
    positions: list[Position] = field(default_factory=list)
    outcomes: Counter = field(default_factory=Counter)

    def commit(self, pipe: Pipeline, publisher: Publisher, group: str) -> None:
        for position in self.positions:
            publisher.add_to(pipe, keys.POSITIONS, position)
        if self.applied:
            pipe.zadd(keys.PROCESSED_SIGNALS, dict.fromkeys(self.applied, time.time()))
            pipe.hset(keys.CONTROL_RESULTS, mapping=self.results)  # type: ignore[arg-type]
        if self.deliveries:
            pipe.xack(keys.CONTROLS, group, *(d.entry_id for d in self.deliveries))


async def decide_controls(
    pipe: Pipeline, portfolio: Portfolio, deliveries: Sequence[Delivery], starting_cash: float, now: datetime
) -> ControlBatch:
    """Apply each control not applied before (by id), in stream order, to the watched account."""
    batch = ControlBatch(portfolio, deliveries)
    if not deliveries:
        return batch
    controls: list[Control] = [d.message for d in deliveries]  # type: ignore[misc]
    done = await pipe.zmscore(keys.PROCESSED_SIGNALS, [f"control:{c.id}" for c in controls])
    for control, seen in zip(controls, done, strict=True):
        key = f"control:{control.id}"
        if seen is not None or key in batch.applied:
            batch.outcomes["duplicate_controls"] += 1
            continue
        batch.portfolio, flat, said = apply_control(batch.portfolio, control, starting_cash, now)
        batch.positions += flat
        batch.applied.append(key)
        batch.results[control.id] = orjson.dumps({"time": time.time(), "result": said})
        batch.outcomes[f"controls_{control.action}"] += 1
        log.info(
            "control applied",
            extra={
                "action": control.action,
                "symbol": control.symbol,
                "actor": control.actor,
                "result": said,
            },
        )
    return batch
