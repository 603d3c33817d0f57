"""A local webhook receiver for notification tests: records each JSON POST and answers with the
statuses it is told to (then 200), or never answers at all (a dead webhook)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from support.services import eventually
from tradebot.common.probes import bind_socket, embedded_server


@dataclass
class Receiver:
    url: str = ""
    received: list[dict[str, Any]] = field(default_factory=list)
    attempts: int = 0
    statuses: list[int] = field(default_factory=list)
    """Answers to the next posts, in order (429 comes with Retry-After: 0)."""
    hang: bool = False


@asynccontextmanager
async def webhook_receiver(hang: bool = False) -> AsyncIterator[Receiver]:
    receiver = Receiver(hang=hang)

    async def hook(request: Request) -> JSONResponse:
        receiver.attempts += 1
        if receiver.hang:
            await asyncio.Event().wait()
        status = receiver.statuses.pop(0) if receiver.statuses else 200
        if status == 200:
            receiver.received.append(await request.json())
        headers = {"Retry-After": "0"} if status == 429 else {}
        return JSONResponse({"ok": status == 200}, status_code=status, headers=headers)

    sock = bind_socket("127.0.0.1", 0)
    server = embedded_server(Starlette(routes=[Route("/hook", hook, methods=["POST"])]))
    serving = asyncio.create_task(server.serve(sockets=[sock]))

    async def started() -> bool:
        return server.started

    await eventually(started, what="the webhook receiver to listen")
    receiver.url = f"http://127.0.0.1:{sock.getsockname()[1]}/hook"
    try:
        yield receiver
    finally:
        server.should_exit = True
        await asyncio.wait_for(serving, timeout=15)
