"""`tradebot up` on the embedded default: within 30 s ticks, signals and fills are in
PostgreSQL, and Ctrl-C stops everything, leaving no process behind."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import asyncpg
import httpx
import psutil
import pytest

from support.services import eventually

pytestmark = pytest.mark.integration


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def processes_using(path: Path) -> list[psutil.Process]:
    found = []
    for process in psutil.process_iter(["cmdline"]):
        if any(str(path) in part for part in process.info["cmdline"] or []):
            found.append(process)
    return found


async def test_up_runs_the_pipeline_and_stops_cleanly(tmp_path):
    data_dir = tmp_path / "data"
    env = {k: v for k, v in os.environ.items() if k not in ("REDIS_URL", "DATABASE_URL")}
    env["TICK_INTERVAL"] = "0.25"
    # Strategies on every trade with short windows, trading any signal: fills within seconds (the
    # cautious defaults trade on 1-minute bars and would need half an hour to warm up).
    env["STRATEGY_PARAMS"] = '{"sma_crossover": {"fast": 2, "slow": 5, "input": "trades"}}'
    env["MIN_SIGNAL_STRENGTH"], env["COOLDOWN_SECONDS"] = "0", "0"
    env["API_PORT"], env["DASHBOARD_PORT"] = str(free_port()), str(free_port())
    up = subprocess.Popen(
        [sys.executable, "-m", "tradebot", "up", "--data-dir", str(data_dir)],
        cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    try:
        connection_file = data_dir / "stack.env"

        async def servers_started() -> bool:
            return connection_file.exists()

        await eventually(servers_started, within=60, what="the embedded servers")
        urls = dict(line.split("=", 1) for line in connection_file.read_text().splitlines())
        conn = await asyncpg.connect(urls["DATABASE_URL"])
        started = time.monotonic()

        async def trading() -> bool:
            counts = await conn.fetchrow(
                "SELECT (SELECT count(*) FROM price_ticks_synthetic) AS ticks,"
                " (SELECT count(*) FROM trade_signals) AS signals, (SELECT count(*) FROM fills) AS fills"
            )
            return all(counts.values())

        await eventually(trading, within=30, what="ticks, signals and fills in PostgreSQL")
        print(f"ticks, signals and fills stored {time.monotonic() - started:.1f}s after start")
        await conn.close()
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{env['DASHBOARD_PORT']}") as dashboard:

            async def dashboard_reaches_the_api() -> bool:
                try:  # history is passed on to the API at API_URL, which up derived from API_PORT
                    return (await dashboard.get("/api/health")).status_code == 200
                except httpx.TransportError:
                    return False

            await eventually(dashboard_reaches_the_api, within=30, what="the dashboard to reach the API")
    finally:
        up.send_signal(signal.SIGINT)
        output, _ = up.communicate(timeout=60)
    assert up.returncode == 0, output
    assert "TradeBot stopped." in output
    for service in ("market_data", "strategy", "execution", "storage", "api", "dashboard"):
        assert f"[{service}] service stopped" in output
    leftovers = processes_using(data_dir)
    assert not leftovers, f"still running: {[p.info['cmdline'] for p in leftovers]}"
