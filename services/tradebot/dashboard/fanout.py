"""Fan-out to browsers: updates gather for a short interval, then one frame goes to every client.

Each client has a mailbox holding at most one frame. A client that is still
sending the previous frame gets the next one merged into its mailbox (newest
price per symbol), so a slow browser sees fewer, fuller frames and never makes
the server buffer without bound or slow down the others.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from tradebot.common.models import Message, PriceTick
from tradebot.dashboard.frames import MAX_EVENTS, Frame, event, merge, price_update

FRAME_INTERVAL = 0.25  # seconds: at most four frames a second per browser
RECENT_EVENTS = 90  # events a new browser starts with


class Mailbox:
    """The one pending frame of one client."""

    def __init__(self) -> None:
        self.pending: Frame | None = None
        self.ready = asyncio.Event()
        self.frames_merged = 0

    def offer(self, frame: Frame) -> None:
        if self.pending is None:
            self.pending = frame
        else:
            self.pending = merge(self.pending, frame)
            self.frames_merged += 1
        self.ready.set()

    async def take(self) -> Frame:
        await self.ready.wait()
        self.ready.clear()
        frame, self.pending = self.pending, None
        assert frame is not None
        return frame


class Hub:
    """Collects updates from the streams and publishes them as frames to every mailbox.

    It also keeps the current state (every symbol's price, recent events, health,
    account), so a browser that connects gets its snapshot from memory: a hundred
    browsers opening at once cost Redis nothing.
    """

    def __init__(self) -> None:
        self.mailboxes: set[Mailbox] = set()
        self._prices: dict[str, dict[str, Any]] = {}
        self._events: list[dict[str, Any]] = []
        self._health: list[dict[str, Any]] | None = None
        self._account: dict[str, Any] | None = None
        self.state = Frame(kind="snapshot")
        self.frames_sent = 0

    def seed(self, snapshot: Frame) -> None:
        """Start from a snapshot read from Redis (before any browser connects)."""
        self.state = merge(snapshot, self.state)

    def snapshot(self) -> Frame:
        return Frame(
            dict(self.state.prices), self.state.events[-RECENT_EVENTS:], self.state.health,
            self.state.account, kind="snapshot",
        )  # fmt: skip

    def add(self, message: Message) -> None:
        if isinstance(message, PriceTick):
            self._prices[message.symbol] = price_update(message)
        else:
            self._events.append(event(message))
            del self._events[:-MAX_EVENTS]

    def set_health(self, health: list[dict[str, Any]]) -> None:
        self._health = health

    def set_account(self, account: dict[str, Any]) -> None:
        self._account = account

    def flush(self) -> Frame:
        """Publish what gathered since the last flush (nothing when nothing changed)."""
        frame = Frame(self._prices, tuple(self._events), self._health, self._account)
        self._prices, self._events, self._health, self._account = {}, [], None, None
        if frame:
            self.state = merge(self.state, frame)
            for mailbox in self.mailboxes:
                mailbox.offer(frame)
            self.frames_sent += 1
        return frame

    async def run(self, stopping: asyncio.Event, interval: float = FRAME_INTERVAL) -> None:
        while not stopping.is_set():
            self.flush()
            await asyncio.sleep(interval)


async def serve_client(hub: Hub, first: Frame, send: Callable[[str], Awaitable[None]]) -> None:
    """Send `first`, then every frame for this client, until sending fails (the browser left)."""
    mailbox = Mailbox()
    mailbox.offer(first)
    hub.mailboxes.add(mailbox)
    try:
        while True:
            frame = await mailbox.take()
            await send(frame.text)
    finally:
        hub.mailboxes.discard(mailbox)
