"""HTTP liveness/readiness endpoints, served by uvicorn inside a service's event loop."""

from __future__ import annotations

import contextlib
import errno
import socket
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from tradebot.common.connections import ConfigurationError

ProbeCheck = Callable[[], tuple[bool, dict[str, Any]]]
SHUTDOWN_GRACE_SECONDS = 3
"""How long a stopping HTTP server lets open requests and WebSockets finish before dropping them."""


def probe_routes(live: ProbeCheck, ready: ProbeCheck) -> list[Route]:
    """`/livez` and `/readyz` (200 or 503 with a JSON reason); mountable into any app."""

    def endpoint(check: ProbeCheck) -> Callable[[Request], Awaitable[JSONResponse]]:
        async def handle(_: Request) -> JSONResponse:
            ok, detail = check()
            return JSONResponse({"ok": ok, **detail}, status_code=200 if ok else 503)

        return handle

    return [
        Route("/livez", endpoint(live)),
        Route("/readyz", endpoint(ready)),
        Route("/healthz", endpoint(ready)),
    ]


def probe_app(live: ProbeCheck, ready: ProbeCheck) -> Starlette:
    return Starlette(routes=probe_routes(live, ready))


class EmbeddedServer(uvicorn.Server):
    """A uvicorn server that leaves signal handling to the service that embeds it, and whose
    stop is bounded: a client that stopped reading (a frozen tab, a stalled network) would
    otherwise hold a closing connection open forever, waiting for its buffer to drain."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        await super().shutdown(sockets)
        for connection in list(self.server_state.connections):
            connection.transport.abort()


def bind_socket(host: str, port: int) -> socket.socket:
    """Bind before serving so port 0 resolves to a real port we can report.

    A port another process holds is a configuration problem, not a passing one: it raises
    ConfigurationError naming the port, and the service stops instead of retrying.
    """
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as error:
        sock.close()
        if error.errno in (errno.EADDRINUSE, errno.EACCES, errno.EADDRNOTAVAIL):
            raise ConfigurationError(f"cannot listen on port {port} ({host}): {error.strerror}") from None
        raise
    sock.set_inheritable(True)
    return sock


def embedded_server(app: Any, log_level: str = "warning", **options: Any) -> EmbeddedServer:
    """`options` are uvicorn.Config's (e.g. ws_per_message_deflate). uvicorn's records go to the
    service's own handler (log_config=None): one format, secrets redacted."""
    config = uvicorn.Config(
        app, log_level=log_level.lower(), access_log=False, lifespan="off", log_config=None,
        timeout_graceful_shutdown=SHUTDOWN_GRACE_SECONDS, **options,
    )  # fmt: skip
    return EmbeddedServer(config)
