"""A canary secret in every credential variable never shows: not in the services' logs at
DEBUG (the websockets library's frames included), not in Redis, not in a heartbeat.

The services run as real processes against the local Alpaca and Polygon servers, a Redis
that requires its password, and PostgreSQL; the API and the dashboard are called with the
token (and logged in to) so their code paths that touch it run too.
"""

from __future__ import annotations

import signal
import subprocess
from collections.abc import Iterator
from urllib.parse import quote

import httpx
import pytest
import redis
import websockets

from providers.fakes.alpaca import FakeAlpaca
from providers.fakes.polygon import FakePolygon
from support.net import free_port
from support.servers import redis_with_args
from support.services import eventually, service_process, stop_process
from tradebot.common.keys import HEARTBEAT_PATTERN, heartbeat_key
from tradebot.common.redaction import RUN

pytestmark = pytest.mark.integration
# One canary per credential variable, each telling where it came from.
CANARIES = {
    "ALPACA_KEY": "canaryAK-5tY8uI1oP4aS7dF0gH3j",
    "ALPACA_SECRET": "canaryAS-2zX5cV8bN1mQ4wE7rT0y",
    "POLYGON_API_KEY": "canaryPK-9kL2jH5gF8dS1aP4oI7u",
    "AUTH_TOKEN": "canaryAT-6qW9eR2tY5uI8oP1aS4d",
    "REDIS_PASSWORD": "canaryRP-3fG6hJ9kL2zX5cV8bN1m",
    "DATABASE_PASSWORD": "canaryDP-8mN1bV4cX7zL0kJ3hG6f",
}
SERVICES = ("alpaca_market_data", "polygon_market_data", "storage", "api", "dashboard")


def leaks(text: str | bytes) -> list[str]:
    """The canaries found in `text`: a run of RUN characters of one, as text or in hex (as
    websockets logs a binary frame)."""
    if isinstance(text, bytes):
        text = text.decode(errors="replace")
    found = []
    for name, canary in CANARIES.items():
        runs = [canary[i : i + RUN] for i in range(len(canary) - RUN + 1)]
        hexed = [" ".join(f"{b:02x}" for b in run.encode()) for run in runs]
        if any(run in text for run in runs + hexed):
            found.append(name)
    return found


@pytest.fixture
def secured_redis(tmp_path) -> Iterator[int]:
    with redis_with_args(tmp_path / "redis", ["--requirepass", CANARIES["REDIS_PASSWORD"]]) as port:
        yield port


def with_password(database_url: str, password: str) -> str:
    """The test server trusts local connections: the password travels, unchecked."""
    scheme, rest = database_url.split("://", 1)
    user, _, host = rest.partition("@")
    return f"{scheme}://{user.split(':')[0]}:{quote(password)}@{host}"


def dump(client: redis.Redis) -> bytes:
    """Every key and everything in it, whatever its type."""
    found = []
    readers = {
        b"string": client.get, b"hash": client.hgetall, b"stream": client.xrange,
        b"list": lambda key: client.lrange(key, 0, -1), b"set": client.smembers,
        b"zset": lambda key: client.zrange(key, 0, -1, withscores=True),
    }  # fmt: skip
    for key in client.scan_iter(count=1000):
        value = readers[client.type(key)](key)
        found.append(key + b"=" + repr(value).encode())
    return b"\n".join(found)


async def test_a_canary_in_every_credential_never_shows(secured_redis, database_url, tmp_path):
    alpaca = FakeAlpaca(
        ["AAPL"], key=CANARIES["ALPACA_KEY"], secret=CANARIES["ALPACA_SECRET"], live_interval=0.2
    ).start()
    polygon = FakePolygon(["AAPL"], key=CANARIES["POLYGON_API_KEY"], live_interval=0.2).start()
    redis_url = f"redis://:{CANARIES['REDIS_PASSWORD']}@127.0.0.1:{secured_redis}"
    api_port, dashboard_port = free_port(), free_port()
    env = {
        "LOG_LEVEL": "DEBUG", "REDIS_URL": redis_url,
        "DATABASE_URL": with_password(database_url, CANARIES["DATABASE_PASSWORD"]),
        "ALPACA_KEY": CANARIES["ALPACA_KEY"], "ALPACA_SECRET": CANARIES["ALPACA_SECRET"],
        "POLYGON_API_KEY": CANARIES["POLYGON_API_KEY"], "AUTH_TOKEN": CANARIES["AUTH_TOKEN"],
        "ALPACA_STREAM_URL": alpaca.stream_url, "ALPACA_DATA_URL": alpaca.rest_url,
        "POLYGON_WS_URL": polygon.ws_url, "POLYGON_REST_URL": polygon.rest_url,
        "SYMBOLS": "AAPL", "API_PORT": str(api_port), "DASHBOARD_PORT": str(dashboard_port),
        "API_URL": f"http://127.0.0.1:{api_port}", "PROBE_PORT": "0",
    }  # fmt: skip
    logs = {sid: tmp_path / f"{sid}.log" for sid in SERVICES}
    client = redis.Redis.from_url(redis_url)
    processes = []
    try:
        for sid in SERVICES:
            with logs[sid].open("w") as out:
                processes.append(service_process(sid, env, stdout=out, stderr=subprocess.STDOUT))

        async def all_beating() -> bool:
            return all(client.exists(heartbeat_key(sid)) for sid in SERVICES)

        await eventually(all_beating, within=90, what="every service's heartbeat")

        async def both_feeds_trading() -> bool:
            beats = [client.get(heartbeat_key(sid)) or b"" for sid in SERVICES[:2]]
            return all(b'"ticks_published"' in beat for beat in beats)

        await eventually(both_feeds_trading, within=90, what="both provider feeds publishing")
        token = {"Authorization": f"Bearer {CANARIES['AUTH_TOKEN']}"}
        dashboard = f"http://127.0.0.1:{dashboard_port}"
        async with httpx.AsyncClient(headers=token) as http:
            assert (await http.get(f"{dashboard}/api/account")).status_code == 200  # dashboard -> API
            assert (await http.get(f"http://127.0.0.1:{api_port}/services")).status_code == 200
            login = await http.post(
                f"{dashboard}/login", data={"token": CANARIES["AUTH_TOKEN"]}, headers={"Origin": dashboard}
            )
            assert login.status_code == 303
        ws = f"ws://127.0.0.1:{dashboard_port}/ws"
        async with websockets.connect(ws, additional_headers=token) as socket:
            await socket.recv()
        heartbeats = [client.get(key) for key in client.scan_iter(match=HEARTBEAT_PATTERN)]
        assert len(heartbeats) >= len(SERVICES)
        assert not leaks(b"".join(b or b"" for b in heartbeats)), "a heartbeat holds a secret"
        assert not leaks(dump(client)), "Redis holds a secret"
    finally:
        for process in processes:
            stop_process(process, signal.SIGTERM)
        alpaca.stop()
        polygon.stop()
        client.close()
    output = {sid: path.read_text() for sid, path in logs.items()}
    for sid, text in output.items():
        assert " DEBUG " in text, f"{sid} logged nothing at DEBUG:\n{text[-2000:]}"
        assert not leaks(text), f"{sid} logged {leaks(text)}:\n" + "\n".join(
            line for line in text.splitlines() if leaks(line)
        )
    # The frames that carried the credentials were logged, redacted (websockets at DEBUG).
    for sid in SERVICES[:2]:
        frames = "> TEXT" in output[sid] or "> BINARY" in output[sid]
        assert frames and "***" in output[sid], output[sid][-3000:]
