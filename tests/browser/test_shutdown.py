"""The dashboard stops promptly while browsers are connected: a live Chromium page, and a client
that stopped reading (a frozen tab, a stalled network) with frames piled up in its socket."""

from __future__ import annotations

import asyncio
import base64
import os
import socket
from datetime import UTC, datetime

import pytest
from playwright.async_api import expect

from browser.stack import logged_in, until_ready
from support.auth import AUTH_TOKEN
from support.services import eventually
from tradebot.common import bus, keys
from tradebot.common.models import Order, OrderStatus, PriceTick, Side
from tradebot.common.service import ServiceRuntime
from tradebot.dashboard.service import DashboardService
from tradebot.local.supervisor import STOP_GRACE_SECONDS

pytestmark = pytest.mark.browser
LAST_PRICE = 999.99
FRAME_EVENTS = 200  # filled orders: a frame of ~150 kB that the page parses but does not draw


def stalled_websocket(port: int) -> socket.socket:
    """A WebSocket client that completes the handshake and then never reads again."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect(("127.0.0.1", port))
    key = base64.b64encode(os.urandom(16)).decode()
    sock.sendall(
        (
            f"GET /ws HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n"
            f"Authorization: Bearer {AUTH_TOKEN}\r\n\r\n"
        ).encode()
    )
    answer = b""
    while b"\r\n\r\n" not in answer:
        answer += sock.recv(1)
    assert answer.startswith(b"HTTP/1.1 101"), answer
    return sock


async def publish_orders(publisher: bus.Publisher, round_: int) -> None:
    now = datetime.now(UTC)
    orders = [
        Order(
            id=f"o{round_}-{i}", signal_id=f"s{round_}-{i}", time=now, strategy="load", symbol="AAPL",
            side=Side.BUY, quantity=1, reference_price=100, status=OrderStatus.FILLED, reason="x" * 500,
        )
        for i in range(FRAME_EVENTS)
    ]  # fmt: skip
    await publisher.publish(keys.ORDERS, [(order, None) for order in orders])


async def publish_price(publisher: bus.Publisher, price: float) -> None:
    tick = PriceTick(source="synthetic", symbol="AAPL", time=datetime.now(UTC), price=price)
    await publisher.publish(keys.TICKS, [(tick, None)])


async def test_the_dashboard_stops_promptly_with_browsers_connected(make_settings, redis, browser):
    settings = make_settings(dashboard_port=0, api_url="http://127.0.0.1:9")
    dashboard = DashboardService(settings)
    runtime = ServiceRuntime(dashboard, settings)
    serving = asyncio.create_task(runtime.run())
    publisher = bus.Publisher(redis, settings.stream_maxlen)
    stalled = None
    try:
        await until_ready(runtime)
        page = await browser.new_page()
        await page.goto(logged_in(f"http://127.0.0.1:{dashboard.port}"))
        state = page.locator("#ws-state")
        await expect(state).to_have_attribute("data-state", "open", timeout=30_000)
        stalled = await asyncio.to_thread(stalled_websocket, dashboard.port)
        rounds = 0

        async def a_client_is_stuck() -> bool:
            """Its socket is full: the dashboard merges frames for it instead of sending them."""
            nonlocal rounds
            rounds += 1
            await publish_orders(publisher, rounds)
            return any(mailbox.frames_merged >= 8 for mailbox in dashboard.hub.mailboxes)

        await eventually(a_client_is_stuck, within=60, interval=0.25, what="the stalled client to back up")
        await publish_price(publisher, LAST_PRICE)  # the page is live; the stalled client never reads it
        last = page.locator('#prices tr[data-symbol="AAPL"] td.price')
        await expect(last).to_have_text(f"{LAST_PRICE:.2f}", timeout=60_000)
        runtime.stop()
        # The supervisor (and Kubernetes) kill a service that has not stopped within its grace.
        done, _ = await asyncio.wait({serving}, timeout=STOP_GRACE_SECONDS)
        assert serving in done, f"the dashboard did not stop within {STOP_GRACE_SECONDS}s"
        await serving
        await expect(state).to_have_attribute("data-state", "closed", timeout=30_000)
    finally:
        if stalled is not None:
            stalled.close()
        if not serving.done():
            serving.cancel()
            await asyncio.gather(serving, return_exceptions=True)
