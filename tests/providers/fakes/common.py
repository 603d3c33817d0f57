"""What both fake providers share: a background event loop, an HTTP server, rate limits, clients.

The fakes run in their own thread and loop, so both async tests and synchronous
SDK calls (alpaca-py's REST clients, a CLI under CliRunner) can reach them.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
import time
from collections.abc import Coroutine
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Self

import uvicorn
from starlette.applications import Starlette
from websockets.asyncio.server import ServerConnection, serve
from websockets.exceptions import ConnectionClosed

if TYPE_CHECKING:
    from .market import FakeMarket


class BackgroundLoop:
    """An event loop in a daemon thread; `call` runs a coroutine there and waits for it."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()

    def call(self, coroutine: Coroutine[Any, Any, Any], timeout: float = 30) -> Any:
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(timeout)

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=10)


async def serve_http(app: Starlette) -> tuple[uvicorn.Server, asyncio.Task, int]:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="off"))
    task = asyncio.get_running_loop().create_task(server.serve(sockets=[sock]))
    while not server.started:  # noqa: ASYNC110 - uvicorn exposes a flag, not an event
        await asyncio.sleep(0.01)
    return server, task, sock.getsockname()[1]


@dataclass
class RateLimit:
    """At most `per_second` requests a second (token bucket), plus forced 429 storms."""

    per_second: float = 1_000.0
    burst: float = 20.0
    storm: int = 0  # the next `storm` requests are refused whatever the bucket says
    retry_after: float | None = 0.5
    tokens: float = field(default=20.0, init=False)
    updated: float = field(default_factory=time.monotonic, init=False)
    accepted: list[float] = field(default_factory=list, init=False)
    refused: int = field(default=0, init=False)

    def admit(self) -> float | None:
        """None when the request may proceed, else the seconds to wait."""
        now = time.monotonic()
        self.tokens = min(self.burst, self.tokens + (now - self.updated) * self.per_second)
        self.updated = now
        if self.storm > 0:
            self.storm -= 1
            self.refused += 1
            return self.retry_after or 0.5
        if self.tokens < 1:
            self.refused += 1
            return (1 - self.tokens) / self.per_second
        self.tokens -= 1
        self.accepted.append(now)
        return None


class Clients:
    """The fake's open WebSocket connections, which tests can drop or silence."""

    def __init__(self) -> None:
        self.open: set[ServerConnection] = set()
        self.silent = False
        self.connections = 0
        self.lag: dict[str, float] = {}  # symbol -> seconds its events reach clients late

    def deliver(self, connection: ServerConnection, symbol: str, frame: str | bytes) -> None:
        """Send a frame now, or after the symbol's lag (one slow upstream symbol)."""

        async def send() -> None:
            if self.lag.get(symbol):
                await asyncio.sleep(self.lag[symbol])
            with contextlib.suppress(ConnectionClosed):
                await connection.send(frame)

        asyncio.get_running_loop().create_task(send())

    def add(self, connection: ServerConnection) -> None:
        self.open.add(connection)
        self.connections += 1

    def drop_all(self) -> int:
        """Abort every connection without a closing handshake, like a network failure."""
        dropped = len(self.open)
        for connection in list(self.open):
            connection.transport.abort()
        return dropped


class ProviderServer:
    """The lifecycle both fakes share: a WebSocket and an HTTP server on loopback, in a background
    loop, with a live tape from the fake market. Subclasses provide `market`, `clients`, `limit`,
    `live_interval`, and their protocol: `_session`, `_app` and `_broadcast`."""

    market: FakeMarket
    clients: Clients
    limit: RateLimit
    live_interval: float | None
    rest_outage = 0  # REST calls still to answer 503

    def start(self) -> Self:
        self._loop = BackgroundLoop()
        self._loop.call(self._start())
        return self

    def stop(self) -> None:
        self._loop.call(self._stop())
        self._loop.close()

    def drop_connections(self) -> int:
        async def drop() -> int:
            return self.clients.drop_all()

        return self._loop.call(drop())

    def set_silent(self, silent: bool) -> None:
        self.clients.silent = silent

    def storm(self, requests: int) -> None:
        self.limit.storm = requests

    def fail_rest(self, requests: int) -> None:
        """The next `requests` REST calls answer 503 (a provider outage)."""
        self.rest_outage = requests

    def outage_answer(self) -> bool:
        """Whether this REST call falls in an outage (counts it down)."""
        if self.rest_outage > 0:
            self.rest_outage -= 1
            return True
        return False

    def send_raw(self, frame: str | bytes) -> None:
        """Send one frame as is to every client (a malformed one, say)."""

        async def send() -> None:
            for connection in list(self.clients.open):
                with contextlib.suppress(ConnectionClosed):
                    await connection.send(frame)

        self._loop.call(send())

    def lag(self, symbol: str, seconds: float) -> None:
        self.clients.lag[symbol] = seconds

    @property
    def rest_url(self) -> str:
        return f"http://127.0.0.1:{self.rest_port}"

    async def _start(self) -> None:
        self._ws = await serve(self._session, "127.0.0.1", 0, compression=None)
        self.ws_port = self._ws.sockets[0].getsockname()[1]
        self._http, self._http_task, self.rest_port = await serve_http(self._app())
        self.market.listeners.append(self._broadcast)
        if self.live_interval is not None:
            self.market.start_live(self.live_interval)

    async def _stop(self) -> None:
        await self.market.stop_live()
        self._ws.close()
        await self._ws.wait_closed()
        self._http.should_exit = True
        await self._http_task
