"""`tradebot up` as a person runs it, as real processes: on the embedded default the pipeline trades
within 30 s and Ctrl-C stops everything; given servers are used (or refused by name when they do
not answer); a closed output pipe does not end it; and when it is killed, everything it started —
six services, the embedded Redis and PostgreSQL — goes with it."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import asyncpg
import httpx
import orjson
import psutil
import pytest
import redis

from support.services import eventually, wait_for
from tradebot.common.keys import heartbeat_key

pytestmark = pytest.mark.integration
SERVICES = ("market_data", "strategy", "execution", "storage", "api", "dashboard")
CLEAN_ENV = (
    "REDIS_URL", "DATABASE_URL", "API_URL", "API_PORT", "DASHBOARD_PORT", "TRADEBOT_DATA_DIR",
    "AUTH_TOKEN", "AUTH", "BIND_HOST",
)  # fmt: skip


def up_env(**values: str) -> dict[str, str]:
    """This environment without any stack setting, plus `values`; ports 0 (up picks free ones).

    Strategies on every trade with short windows, trading any signal: fills within seconds (the
    cautious defaults trade on 1-minute bars and would need half an hour to warm up)."""
    env = {k: v for k, v in os.environ.items() if k not in CLEAN_ENV}
    fast = {
        "TICK_INTERVAL": "0.25", "MIN_SIGNAL_STRENGTH": "0", "COOLDOWN_SECONDS": "0",
        "STRATEGY_PARAMS": '{"sma_crossover": {"fast": 2, "slow": 5, "input": "trades"}}',
    }  # fmt: skip
    return {**env, **fast, "API_PORT": "0", "DASHBOARD_PORT": "0", **values}


class Up:
    """`tradebot up` as a child process, its output (stdout and stderr) collected line by line.

    With `keep_lines`, the reader closes the pipe after that many lines, like `| head -3`."""

    def __init__(self, cwd: Path, env: dict[str, str], keep_lines: int | None = None) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "tradebot", "up"], cwd=cwd, env=env,
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        )  # fmt: skip
        self.data_dir = cwd / ".tradebot"
        self.lines: list[str] = []
        self.reader = threading.Thread(target=self._read, args=(keep_lines,), daemon=True)
        self.reader.start()

    def _read(self, keep_lines: int | None) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.append(line.rstrip("\n"))
            if keep_lines is not None and len(self.lines) >= keep_lines:
                break
        self.process.stdout.close()

    @property
    def output(self) -> str:
        return "\n".join(self.lines)

    def banner_port(self, name: str) -> int:
        found = wait_for(
            f"the banner's {name}", lambda: re.search(rf"{name}\s+http://localhost:(\d+)", self.output)
        )
        return int(found.group(1))

    def token(self) -> str:
        """The token `up` made for this run, from the dashboard's URL in its banner (as Jupyter's)."""
        found = wait_for("the banner's token", lambda: re.search(r"/\?token=([\w-]+)", self.output))
        return found.group(1)

    def stack_file(self) -> dict[str, str]:
        path = self.data_dir / "stack.env"
        wait_for("the stack's connection file", path.exists, timeout=90)
        return dict(line.split("=", 1) for line in path.read_text().splitlines())

    def stop(self, sig: int = signal.SIGINT, timeout: float = 90) -> int:
        if self.process.poll() is None:
            self.process.send_signal(sig)
        code = self.process.wait(timeout)
        self.reader.join(10)
        return code


def gone(pid: int) -> bool:
    """Ended: no such process, or a zombie nobody reaped yet (it holds no port, no file)."""
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def everything_started(up: Up, urls: dict[str, str]) -> dict[int, str]:
    """pid -> what it is: up's children (six services and its guard) and the embedded servers."""

    def services_running() -> dict[int, str]:
        found = {}
        for child in psutil.Process(up.process.pid).children(recursive=True):
            try:
                found[child.pid] = " ".join(child.cmdline()[-3:])
            except psutil.NoSuchProcess:  # a service restarting: look again
                return {}
        return found if {what.rsplit(" ", 1)[-1] for what in found.values()} >= set(SERVICES) else {}

    processes = wait_for("the six services", services_running)
    client = redis.Redis.from_url(urls["REDIS_URL"])
    processes[int(client.info("server")["process_id"])] = "embedded redis"
    client.close()
    postmaster = (up.data_dir / "postgres" / "postmaster.pid").read_text().split()[0]
    processes[int(postmaster)] = "embedded postgres"
    return processes


def port_closed(port: int) -> bool:
    with socket.socket() as probe:
        return probe.connect_ex(("127.0.0.1", port)) != 0


async def stack_trading(database_url: str) -> None:
    conn = await asyncpg.connect(database_url)

    async def trading() -> bool:
        counts = await conn.fetchrow(
            "SELECT (SELECT count(*) FROM price_ticks_synthetic) AS ticks,"
            " (SELECT count(*) FROM trade_signals) AS signals, (SELECT count(*) FROM fills) AS fills"
        )
        return all(counts.values())

    try:
        await eventually(trading, within=30, what="ticks, signals and fills in PostgreSQL")
    finally:
        await conn.close()


async def answers(url: str, token: str | None = None, status: int = 200) -> bool:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with httpx.AsyncClient(headers=headers) as http:
        try:
            return (await http.get(url)).status_code == status
        except httpx.TransportError:
            return False


def other_address() -> str:
    """An address of this machine that is not loopback (what another machine would connect to)."""
    for addresses in psutil.net_if_addrs().values():
        for address in addresses:
            if address.family == socket.AF_INET and not address.address.startswith("127."):
                return address.address
    raise AssertionError("this machine has no IPv4 address besides loopback")


async def test_up_runs_the_pipeline_shows_its_ports_and_stops_cleanly(tmp_path):
    up = Up(tmp_path, up_env())
    try:
        urls = up.stack_file()
        started = time.monotonic()
        await stack_trading(urls["DATABASE_URL"])
        print(f"ticks, signals and fills stored {time.monotonic() - started:.1f}s after the servers")
        api, dashboard = up.banner_port("API"), up.banner_port("Dashboard")
        assert 0 not in (api, dashboard) and urls["API_URL"] == f"http://127.0.0.1:{api}"
        # The dashboard passes history on to the API at API_URL, which follows the port up picked,
        # for a holder of the token up made and printed, and for nobody else.
        token = up.token()
        health = f"http://127.0.0.1:{dashboard}/api/health"
        await eventually(lambda: answers(health, token), what="dashboard -> API")
        assert await answers(health, status=401) and await answers(health, "not-the-token", 401)
        assert await answers(f"http://127.0.0.1:{api}/account", token)
        # Listening on this machine only (BIND_HOST): another machine's connection is refused.
        assert not await answers(f"http://{other_address()}:{api}/account", token)
        assert not await answers(f"http://{other_address()}:{dashboard}/", token)
        # Another command in the same directory finds the running stack without being told.
        env = {k: v for k, v in up_env().items() if k not in ("API_PORT", "DASHBOARD_PORT")}
        demo = subprocess.run(
            [sys.executable, "-m", "tradebot", "demo", "--hours", "0.2", "--step", "30"],
            cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        assert demo.returncode == 0, demo.stdout + demo.stderr
        assert "Demo history" in demo.stderr
        processes = everything_started(up, urls)
    finally:
        code = up.stop(signal.SIGINT)
    assert code == 0, up.output
    assert "TradeBot stopped." in up.output
    for service in SERVICES:
        assert f"[{service}] service stopped" in up.output
    leftovers = {pid: what for pid, what in processes.items() if not gone(pid)}
    assert not leftovers, f"still running after Ctrl-C: {leftovers}"
    assert not (up.data_dir / "stack.env").exists(), "a stopped stack leaves no connection file"


async def test_up_outlives_a_closed_pipe_and_takes_everything_with_it_when_killed(tmp_path):
    up = Up(tmp_path, up_env(), keep_lines=3)  # `tradebot up | head -3`
    try:
        urls = up.stack_file()
        await stack_trading(urls["DATABASE_URL"])  # long after its reader left
        assert up.process.poll() is None, "a closed output pipe ended tradebot up"
        assert len(up.lines) == 3
        processes = everything_started(up, urls)
        ports = [int(urls["API_URL"].rsplit(":", 1)[1])]
        # Its token went out in the lines nobody read: a refusal is the API answering.
        await eventually(lambda: answers(f"{urls['API_URL']}/health", status=401), what="the API")
        up.process.kill()  # SIGKILL: no handler, no finally, no atexit
        up.process.wait(10)

        async def all_gone() -> bool:
            return all(gone(pid) for pid in processes)

        await eventually(all_gone, within=45, what=f"everything up started to end: {processes}")
        assert all(port_closed(port) for port in ports)
    finally:
        up.stop(signal.SIGKILL)


@pytest.mark.parametrize(
    ("variable", "value", "said"),
    [
        ("REDIS_URL", "redis://127.0.0.1:{port}", "no Redis answers there"),
        ("DATABASE_URL", "garbage", "invalid DSN"),
        (
            "DATABASE_URL",
            "postgresql://trader:s3cret@127.0.0.1:{port}/tradebot",
            "no PostgreSQL answers there",
        ),
        ("API_URL", "localhost:8000", "is not an http(s) URL"),
    ],
)
def test_up_refuses_a_given_server_that_does_not_answer(tmp_path, variable, value, said):
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        value = value.format(port=closed.getsockname()[1])  # bound, never listening: refused
        result = subprocess.run(
            [sys.executable, "-m", "tradebot", "up"], cwd=tmp_path, env=up_env(**{variable: value}),
            capture_output=True, text=True, timeout=60,
        )  # fmt: skip
    message = " ".join((result.stdout + result.stderr).split())
    assert result.returncode == 2, message
    assert f"{variable}=" in message and said in message
    assert "s3cret" not in message, "a password is never printed"
    assert not (tmp_path / ".tradebot").exists(), "no embedded server stands in for a given one"


class FakeApi(BaseHTTPRequestHandler):
    """Whatever API_URL names: answers /health so the dashboard's pass-through can be seen."""

    def do_GET(self) -> None:
        body = orjson.dumps({"served_by": "the API at API_URL", "path": self.path})
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args) -> None:
        pass


async def test_up_uses_the_given_servers_and_api_url(tmp_path, redis_url, database_url):
    api = ThreadingHTTPServer(("127.0.0.1", 0), FakeApi)
    threading.Thread(target=api.serve_forever, daemon=True).start()
    api_url = f"http://127.0.0.1:{api.server_address[1]}"
    up = Up(tmp_path, up_env(REDIS_URL=redis_url, DATABASE_URL=database_url, API_URL=api_url))
    try:
        assert up.stack_file() == {**up.stack_file(), "REDIS_URL": redis_url, "DATABASE_URL": database_url}
        await stack_trading(database_url)
        client = redis.Redis.from_url(redis_url)
        assert client.exists(heartbeat_key("market_data")), "the services run on the given Redis"
        client.close()
        dashboard = up.banner_port("Dashboard")
        assert "configured servers" in up.output
        async with httpx.AsyncClient(headers={"Authorization": f"Bearer {up.token()}"}) as http:

            async def through_the_dashboard() -> bool:
                try:
                    answer = await http.get(f"http://127.0.0.1:{dashboard}/api/health")
                except httpx.TransportError:
                    return False
                return answer.status_code == 200 and answer.json()["served_by"] == "the API at API_URL"

            await eventually(through_the_dashboard, what="the dashboard to use API_URL")
    finally:
        code = up.stop(signal.SIGINT)
        api.shutdown()
    assert code == 0, up.output
    assert not (up.data_dir / "redis").exists() and not (up.data_dir / "postgres").exists()
