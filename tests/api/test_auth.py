"""Who may read and change a stack, against the real API and dashboard on real ports.

Every route is found in the served apps themselves (included routers too), so a route added
later is checked without this file changing: only the PUBLIC ones answer without the token.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass

import httpx
import pytest
import websockets
from fastapi import FastAPI
from pydantic import SecretStr
from starlette.routing import Mount, WebSocketRoute

from api.known_history import write_known_history
from support.auth import AUTH_HEADERS, AUTH_TOKEN
from support.services import eventually, running
from tradebot.api.auth import SESSION_COOKIE, Access
from tradebot.api.service import ApiService
from tradebot.common import keys
from tradebot.common.settings import AuthMode
from tradebot.dashboard.service import DashboardService

pytestmark = pytest.mark.integration

PUBLIC = {
    ("GET", "/livez"), ("GET", "/readyz"), ("GET", "/healthz"),  # the kubelet's probes
    ("GET", "/openapi.json"), ("GET", "/docs"), ("GET", "/docs/oauth2-redirect"), ("GET", "/redoc"),
    ("GET", "/login"), ("POST", "/login"), ("POST", "/logout"),  # how a token becomes a session
    ("MOUNT", "/static"), ("MOUNT", "/static-offline-docs"),  # the pages' scripts and styles
}  # fmt: skip
SAMPLES = {
    "source": "synthetic",
    "symbol": "AAPL",
    "service_id": "strategy",
    "path": "account",
    "run_id": "1",
}
FOREIGN = "http://evil.example"
WRONG_TOKEN = "not-the-token-of-this-stack-000"
SAFE = {"GET"}
PAGES = {("GET", "/"), ("GET", "/backtests")}  # the dashboard's pages: a login page, not a 401


@dataclass
class Served:
    api: str
    dashboard: str
    apps: dict[str, FastAPI]


def served_routes(app: FastAPI) -> Iterator[tuple[str, str]]:
    """(method, path) of every HTTP route, ("WS", path) of every WebSocket, ("MOUNT", path) of
    every mounted app, routes of included routers with their prefixes."""
    for route in app.routes:
        # FastAPI ≥ 0.16x keeps an included router whole; its effective routes carry the prefix.
        contexts = getattr(route, "effective_route_contexts", None)
        for effective in contexts() if contexts else [route]:
            original = getattr(effective, "original_route", effective)
            path = effective.path  # type: ignore[attr-defined]
            if isinstance(original, Mount):
                yield "MOUNT", path
            elif isinstance(original, WebSocketRoute) or not hasattr(original, "methods"):
                yield "WS", path
            else:
                yield from ((method, path) for method in sorted(original.methods - {"HEAD"}))


def concrete(path: str) -> str:
    return re.sub(r"\{(\w+)(?::\w+)?\}", lambda m: SAMPLES.get(m[1], "x"), path)


async def serve(make_settings, database_url: str, **overrides) -> AsyncIterator[Served]:
    await write_known_history(database_url)
    settings = make_settings(api_port=0, dashboard_port=0, **overrides)
    api = ApiService(settings)
    async with running(api, settings=settings) as [api_runtime]:
        await eventually(lambda: ready(api_runtime), what="the API")
        with_api = settings.model_copy(update={"api_url": f"http://127.0.0.1:{api.port}"})
        dashboard = DashboardService(with_api)
        async with running(dashboard, settings=with_api) as [runtime]:
            await eventually(lambda: ready(runtime), what="the dashboard")
            assert api.app is not None and dashboard.app is not None
            apps = {"api": api.app, "dashboard": dashboard.app}
            yield Served(f"http://127.0.0.1:{api.port}", f"http://127.0.0.1:{dashboard.port}", apps)


async def ready(runtime) -> bool:
    return runtime.ctx.ready


@pytest.fixture
async def served(make_settings, database_url) -> AsyncIterator[Served]:
    async for stack in serve(make_settings, database_url):
        yield stack


@pytest.fixture
async def read_open(make_settings, database_url) -> AsyncIterator[Served]:
    async for stack in serve(make_settings, database_url, auth="read-open"):
        yield stack


def protected(served: Served) -> list[tuple[str, str, str]]:
    """(base URL, method, path) of every route but the public ones; fails on an unknown mount."""
    found = []
    for name, app in served.apps.items():
        base = served.api if name == "api" else served.dashboard
        for method, path in served_routes(app):
            if (method, path) in PUBLIC:
                continue
            assert method != "MOUNT", f"{name} mounts {path}: is it public? add it to PUBLIC, or protect it"
            found.append((base, method, path))
    return found


def session_of(token: str, seconds_left: float = 3_600) -> str:
    """A session cookie as the dashboard signs it, for `token`, ending in `seconds_left`."""
    access = Access(SecretStr(token), AuthMode.REQUIRED, session_seconds=3_600)
    return access.new_session(now=time.time() - 3_600 + seconds_left)


def cookie(value: str) -> dict[str, str]:
    return {"Cookie": f"{SESSION_COOKIE}={value}"}


async def call(method: str, url: str, **kwargs) -> httpx.Response:
    async with httpx.AsyncClient(follow_redirects=False) as http:
        return await http.request(method, url, **kwargs)


async def refused_websocket(url: str, **kwargs) -> int:
    """The HTTP status a refused WebSocket handshake gets; fails when it opens."""
    try:
        async with websockets.connect(url, **kwargs):
            pass
    except websockets.exceptions.InvalidStatus as refusal:
        return refusal.response.status_code
    raise AssertionError(f"the WebSocket {url} opened")


async def test_every_route_needs_the_token_or_a_session(served: Served):
    routes = protected(served)
    assert {(m, p) for _, m, p in routes} >= {("DELETE", "/services/{service_id}/errors"), ("WS", "/ws")}
    wrong = [
        {},
        {"headers": {"Authorization": f"Bearer {WRONG_TOKEN}"}},
        {"headers": {"Authorization": AUTH_TOKEN}},  # not a bearer token
        {"headers": cookie(session_of(WRONG_TOKEN))},  # another stack's session
        {"headers": cookie(session_of(AUTH_TOKEN, seconds_left=-1))},  # an ended one
        {"headers": cookie("1.2.3")},
    ]
    for base, method, path in routes:
        url = base + concrete(path)
        if method == "WS":
            ws = url.replace("http", "ws", 1)
            for credentials in wrong:
                headers = credentials.get("headers", {})
                assert await refused_websocket(ws, additional_headers=headers) == 403, (path, credentials)
            async with websockets.connect(ws, additional_headers=AUTH_HEADERS) as socket:
                assert b'"snapshot"' in (await socket.recv()).encode()
            continue
        for credentials in wrong:
            answer = await call(method, url, **credentials)
            if base == served.dashboard and (method, path) in PAGES:  # a person: to the login page
                assert answer.status_code == 303 and answer.headers["location"].startswith("/login")
            else:
                assert answer.status_code == 401, (method, path, credentials, answer.text)
                assert answer.headers["www-authenticate"] == "Bearer"
        answer = await call(method, url, headers=AUTH_HEADERS)
        assert answer.status_code not in (401, 403), (method, path, answer.text)


async def test_read_open_opens_reads_and_never_changes(read_open: Served):
    for base, method, path in protected(read_open):
        url = base + concrete(path)
        if method == "WS":
            async with websockets.connect(url.replace("http", "ws", 1)) as socket:
                assert b'"snapshot"' in (await socket.recv()).encode()
            assert await refused_websocket(url.replace("http", "ws", 1), origin=FOREIGN) == 403
        elif method in SAFE:
            assert (await call(method, url)).status_code not in (401, 403), (method, path)
        else:
            assert (await call(method, url)).status_code == 401, (method, path)
            wrong = {"Authorization": f"Bearer {WRONG_TOKEN}"}
            assert (await call(method, url, headers=wrong)).status_code == 401, (method, path)


async def with_errors(redis, service_id: str = "strategy") -> None:
    await redis.set(keys.heartbeat_key(service_id), '{"timestamp": 0, "status": "running"}')
    await redis.set(keys.errors_key(service_id), 3)


async def test_a_mutation_from_another_site_is_refused(served: Served, redis):
    """Cross-site request forgery: the browser attaches the session cookie by itself, so a
    foreign page could reset counters (and, later, flatten positions) with the user's rights."""
    session = cookie(session_of(AUTH_TOKEN))
    mutations = [
        (served.dashboard, "POST", "/services/strategy/reset-errors"),
        (served.api, "DELETE", "/services/strategy/errors"),
    ]
    for base, method, path in mutations:
        await with_errors(redis)
        for refused in (
            {**session, "Origin": FOREIGN},
            {**session, "Origin": "null"},
            session,  # a session without the browser's Origin proves nothing
            {**AUTH_HEADERS, "Origin": FOREIGN},
            {**session, "Origin": base.replace("127.0.0.1", "localhost")},
        ):
            answer = await call(method, base + path, headers=refused)
            assert answer.status_code == 403, (path, refused, answer.text)
            assert "cross-site" in answer.json()["detail"]
            assert await redis.get(keys.errors_key("strategy")) == b"3", (path, refused)
        answer = await call(method, base + path, headers={**session, "Origin": base})
        assert answer.status_code == 204, answer.text
        assert await redis.get(keys.errors_key("strategy")) in (None, b"0")
        await with_errors(redis)
        assert (await call(method, base + path, headers=AUTH_HEADERS)).status_code == 204


async def test_the_websocket_refuses_a_foreign_origin(served: Served):
    ws = served.dashboard.replace("http", "ws", 1) + "/ws"
    session = cookie(session_of(AUTH_TOKEN))
    assert await refused_websocket(ws, origin=FOREIGN, additional_headers=session) == 403
    assert await refused_websocket(ws, origin=FOREIGN, additional_headers=AUTH_HEADERS) == 403
    assert await refused_websocket(ws, origin=served.dashboard) == 403  # same site, no session
    async with websockets.connect(ws, origin=served.dashboard, additional_headers=session) as socket:
        assert b'"snapshot"' in (await socket.recv()).encode()


async def test_login_exchanges_the_token_for_a_strict_httponly_cookie(served: Served):
    login = served.dashboard + "/login"
    origin = {"Origin": served.dashboard}
    wrong = await call("POST", login, data={"token": WRONG_TOKEN}, headers=origin)
    assert wrong.status_code == 401 and "not the token of this stack" in wrong.text
    assert SESSION_COOKIE not in wrong.cookies
    foreign = await call("POST", login, data={"token": AUTH_TOKEN}, headers={"Origin": FOREIGN})
    assert foreign.status_code == 403 and SESSION_COOKIE not in foreign.cookies
    huge = await call("POST", login, data={"token": "x" * 10_000}, headers=origin)
    assert huge.status_code == 413

    answer = await call("POST", login, data={"token": AUTH_TOKEN}, headers=origin)
    assert answer.status_code == 303 and answer.headers["location"] == "/"
    set_cookie = answer.headers["set-cookie"]
    attributes = {part.strip().split("=")[0].lower() for part in set_cookie.split(";")[1:]}
    assert {"httponly", "samesite", "max-age", "path"} <= attributes
    assert "samesite=strict" in set_cookie.lower() and AUTH_TOKEN not in set_cookie
    session = cookie(answer.cookies[SESSION_COOKIE])
    assert (await call("GET", served.dashboard + "/", headers=session)).status_code == 200
    config = await call("GET", served.dashboard + "/config", headers=session)
    assert config.json()["authenticated"] is True
    # The API on another port of the same host accepts the same session (cookies ignore ports).
    assert (await call("GET", served.api + "/account", headers=session)).status_code == 200

    by_url = await call("GET", f"{served.dashboard}/?token={AUTH_TOKEN}")
    assert by_url.status_code == 303 and by_url.headers["location"] == "/"  # the token leaves the URL
    assert SESSION_COOKIE in by_url.cookies
    wrong_url = await call("GET", f"{served.dashboard}/?token={WRONG_TOKEN}")
    assert wrong_url.headers["location"] == "/login?note=wrong"

    out = await call("POST", served.dashboard + "/logout", headers={**session, **origin})
    assert out.status_code == 303 and out.headers["location"] == "/login?note=out"
    assert 'tradebot_session=""' in out.headers["set-cookie"] and "Max-Age=0" in out.headers["set-cookie"]


async def test_the_api_document_declares_its_security(served: Served):
    document = (await call("GET", served.api + "/openapi.json")).json()
    schemes = document["components"]["securitySchemes"]
    assert schemes["token"] == {"type": "http", "scheme": "bearer", "description": "AUTH_TOKEN"}
    assert schemes["session"]["in"] == "cookie" and schemes["session"]["name"] == SESSION_COOKIE
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            assert operation["security"] == [{"token": []}, {"session": []}], (method, path)
            assert {"401", "403"} <= set(operation["responses"]), (method, path)


def test_no_token_no_service(make_settings):
    settings = make_settings(auth_token=None)
    for service in (ApiService, DashboardService):
        with pytest.raises(ValueError, match="AUTH_TOKEN is not set"):
            service(settings)
    env = {k: v for k, v in os.environ.items() if k not in ("AUTH_TOKEN", "AUTH")}
    started = subprocess.run(
        [sys.executable, "-m", "tradebot", "service", "api"], env=env, capture_output=True, text=True,
        timeout=60,
    )  # fmt: skip
    assert started.returncode == 2, started.stdout + started.stderr
    assert "AUTH_TOKEN is not set" in started.stdout + started.stderr
