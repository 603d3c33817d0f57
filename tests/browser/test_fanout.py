"""The dashboard's fan-out without a browser: coalescing per symbol and bounded mailboxes (pure asyncio)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import orjson

from tradebot.common.models import PriceTick
from tradebot.dashboard.fanout import Hub, Mailbox, serve_client
from tradebot.dashboard.frames import MAX_EVENTS, Frame, merge


def tick(symbol: str, price: float) -> PriceTick:
    return PriceTick(source="synthetic", symbol=symbol, time=datetime(2026, 1, 5, tzinfo=UTC), price=price)


def test_a_burst_of_ticks_becomes_one_price_per_symbol():
    hub = Hub()
    mailbox = Mailbox()
    hub.mailboxes.add(mailbox)
    for i in range(1, 1001):
        hub.add(tick("AAPL" if i % 2 else "MSFT", float(i)))
    frame = hub.flush()
    assert {s: p["price"] for s, p in frame.prices.items()} == {"AAPL": 999.0, "MSFT": 1000.0}
    assert mailbox.pending is frame
    assert not hub.flush(), "nothing new, nothing sent"


def test_a_slow_client_gets_frames_merged_not_queued():
    mailbox = Mailbox()
    for i in range(500):
        mailbox.offer(Frame(prices={"AAPL": {"price": i}}, events=({"kind": "signal", "n": i},)))
    assert mailbox.frames_merged == 499
    assert mailbox.pending.prices == {"AAPL": {"price": 499}}
    assert len(mailbox.pending.events) == MAX_EVENTS
    assert mailbox.pending.events[-1] == {"kind": "signal", "n": 499}


def test_a_snapshot_stays_a_snapshot_when_updates_merge_into_it():
    snapshot = Frame(prices={"A": {"price": 1}}, health=[], kind="snapshot")
    merged = merge(snapshot, Frame(prices={"B": {"price": 2}}))
    assert merged.kind == "snapshot" and set(merged.prices) == {"A", "B"} and merged.health == []


def test_a_frame_is_serialised_once_for_every_client():
    frame = Frame(prices={"AAPL": {"price": 1.5}}, account={"cash": 1})
    assert frame.text is frame.text
    expected = {"type": "update", "prices": {"AAPL": {"price": 1.5}}, "account": {"cash": 1}}
    assert orjson.loads(frame.text) == expected


async def test_serve_client_sends_the_first_frame_then_updates_and_leaves_cleanly():
    hub, sent = Hub(), []
    first, gone = asyncio.Event(), asyncio.Event()

    async def send(text: str) -> None:
        sent.append(orjson.loads(text))
        first.set()
        if len(sent) == 2:
            gone.set()
            raise ConnectionError("browser closed")

    task = asyncio.create_task(serve_client(hub, Frame(prices={"A": {"price": 1}}, kind="snapshot"), send))
    await first.wait()
    hub.add(tick("AAPL", 2.0))
    hub.flush()
    await gone.wait()
    await asyncio.gather(task, return_exceptions=True)
    assert [m["type"] for m in sent] == ["snapshot", "update"]
    assert sent[1]["prices"]["AAPL"]["price"] == 2.0
    assert not hub.mailboxes, "a client that left is forgotten"


def test_a_new_client_starts_from_the_state_in_memory():
    hub = Hub()
    hub.seed(Frame(prices={"AAPL": {"price": 1.0}}, events=({"kind": "fill"},), health=[], kind="snapshot"))
    hub.add(tick("MSFT", 2.0))
    hub.set_account({"cash": 5})
    hub.flush()
    snapshot = hub.snapshot()
    assert snapshot.kind == "snapshot"
    assert {s: p["price"] for s, p in snapshot.prices.items()} == {"AAPL": 1.0, "MSFT": 2.0}
    assert snapshot.events == ({"kind": "fill"},)
    assert (snapshot.health, snapshot.account) == ([], {"cash": 5})
