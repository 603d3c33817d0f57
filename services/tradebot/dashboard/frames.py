"""What the dashboard sends its browsers, and how pending updates coalesce.

A frame carries only what changed since the previous one: the newest tick per
symbol, the latest events (signals, orders, fills, positions), and the latest
health and account. Merging two frames keeps the newer price of each symbol and
at most MAX_EVENTS events, so however fast the market and however slow a
browser, what waits for it is bounded by the number of symbols.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import orjson

from tradebot.common.models import Message, PriceTick

MAX_EVENTS = 200


def price_update(tick: PriceTick) -> dict[str, Any]:
    """The few fields of a tick that the browser shows."""
    return {
        "symbol": tick.symbol,
        "price": tick.price,
        "bid": tick.bid,
        "ask": tick.ask,
        "size": tick.size,
        "time": tick.time.timestamp(),
    }


def event(message: Message) -> dict[str, Any]:
    """A signal, order, fill or position, tagged with its kind."""
    return {"kind": message.kind, **message.model_dump(mode="json")}


@dataclass(frozen=True)
class Frame:
    prices: dict[str, dict[str, Any]] = field(default_factory=dict)
    events: tuple[dict[str, Any], ...] = ()
    health: list[dict[str, Any]] | None = None
    account: dict[str, Any] | None = None
    kind: str = "update"

    def __bool__(self) -> bool:
        return bool(self.prices or self.events or self.health is not None or self.account is not None)

    @cached_property
    def text(self) -> str:
        """Serialised once, however many browsers receive it."""
        body: dict[str, Any] = {"type": self.kind}
        if self.prices:
            body["prices"] = self.prices
        if self.events:
            body["events"] = list(self.events)
        if self.health is not None:
            body["health"] = self.health
        if self.account is not None:
            body["account"] = self.account
        return orjson.dumps(body).decode()


def merge(older: Frame, newer: Frame) -> Frame:
    """Pure: one frame with the effect of both, the newer winning per symbol."""
    return Frame(
        prices={**older.prices, **newer.prices},
        events=(older.events + newer.events)[-MAX_EVENTS:],
        health=newer.health if newer.health is not None else older.health,
        account=newer.account if newer.account is not None else older.account,
        kind=older.kind if older.kind == "snapshot" else newer.kind,
    )
