"""WebSocket fan-out: how many browsers the dashboard serves at the live tick rate.

A real Redis, the synthetic market-data service publishing --rate ticks/s over
--symbols symbols, and the dashboard service, each in its own process; this
process opens more and more WebSocket clients and, for each step, prints the
frames and price updates every client received per second and the tick-to-
browser latency (tick time to receipt, p50/p99). A step "keeps up" while every
client gets at least 80% of the price updates it should (all ticks for the
naive server; the newest price of each symbol every frame, four frames a second,
for the dashboard) and the p99 latency stays under --max-latency seconds.

The baseline, in the same run: a naive server that sends every tick to every
client as its own message (no coalescing), at the same rate.

With --page, instead: how fast the page itself is ready. A real Redis and PostgreSQL
holding --fills stored fills (with their orders) over --symbols symbols, the synthetic
market data publishing those symbols, the API and the dashboard, each in its own process;
headless Chromium loads the page --loads times and prints first contentful paint and time
to interactive (every symbol's row in the price table and the closed trades, performance
and equity drawn), median and worst.

Usage: python bench/dashboard.py [--rate 1000] [--symbols 100] [--clients 10,25,50,100,200,400,800]
       python bench/dashboard.py --page [--symbols 500] [--fills 100000] [--loads 5]
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import os
import secrets
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import orjson
from websockets.asyncio.client import connect
from websockets.asyncio.server import ServerConnection, serve
from websockets.exceptions import ConnectionClosed

from tradebot.common import keys, wire
from tradebot.common.connections import connect_redis
from tradebot.dashboard.fanout import FRAME_INTERVAL
from tradebot.local.embedded import EmbeddedRedis

TOKEN = secrets.token_urlsafe(32)  # the dashboard's AUTH_TOKEN for this run


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_service(name: str, env: dict[str, str]) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "tradebot", "service", name],
        env={**os.environ, **env},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )


def stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
    process.wait(timeout=30)


@dataclass
class ClientStats:
    frames: int = 0
    updates: int = 0
    latencies: list[float] = field(default_factory=list)


async def client(url: str, stats: ClientStats, stop_at: float, ready: asyncio.Event) -> None:
    """One browser: counts frames and price updates, and how old each price is on arrival."""
    async with connect(url, max_size=None, additional_headers={"Authorization": f"Bearer {TOKEN}"}) as ws:
        ready.set()
        while (left := stop_at - time.monotonic()) > 0:
            try:
                raw = await asyncio.wait_for(ws.recv(), timeout=left)
            except (TimeoutError, ConnectionClosed):
                return
            arrived = time.time()
            body = orjson.loads(raw)
            prices = body.get("prices") or ({body["symbol"]: body} if "symbol" in body else {})
            if body.get("type") == "snapshot":
                continue
            stats.frames += 1
            stats.updates += len(prices)
            stats.latencies += [arrived - p["time"] for p in prices.values()]


async def step(url: str, redis_url: str, clients: int, seconds: float) -> dict:
    stats = [ClientStats() for _ in range(clients)]
    readies = [asyncio.Event() for _ in range(clients)]
    stop_at = time.monotonic() + seconds + 5
    tasks = [asyncio.create_task(client(url, s, stop_at, r)) for s, r in zip(stats, readies, strict=True)]
    await asyncio.wait_for(asyncio.gather(*(r.wait() for r in readies)), timeout=60)
    redis = connect_redis(redis_url)
    for s in stats:  # measure only once everyone is connected
        s.frames, s.updates, s.latencies = 0, 0, []
    started, ticks_before = time.monotonic(), await redis.xlen(keys.TICKS)
    await asyncio.gather(*tasks, return_exceptions=True)
    elapsed = time.monotonic() - started
    tick_rate = (await redis.xlen(keys.TICKS) - ticks_before) / elapsed
    await redis.aclose()
    latencies = sorted(x for s in stats for x in s.latencies)
    cuts = statistics.quantiles(latencies, n=100) if len(latencies) > 100 else [float("nan")] * 99
    return {
        "frames_per_client_s": statistics.mean(s.frames for s in stats) / elapsed,
        "updates_per_client_s": statistics.mean(s.updates for s in stats) / elapsed,
        "p50": cuts[49],
        "p99": cuts[98],
        "tick_rate": tick_rate,
    }


def naive_server(redis_url: str, port: int) -> None:
    """The baseline: every tick to every client, one message each, no coalescing."""

    async def main() -> None:
        redis = connect_redis(redis_url)
        clients: set[ServerConnection] = set()

        async def handler(ws: ServerConnection) -> None:
            await ws.send(orjson.dumps({"type": "snapshot"}).decode())
            clients.add(ws)
            try:
                await ws.wait_closed()
            finally:
                clients.discard(ws)

        async with serve(handler, "127.0.0.1", port, max_size=None):
            last: bytes | str = "$"
            while True:
                response = await redis.xread({keys.TICKS: last}, count=5000, block=1000)
                for _, entries in response or []:
                    last = entries[-1][0]
                    for tick in (t for _, fields in entries for t in wire.decode_entry(fields).messages):
                        text = orjson.dumps(
                            {"symbol": tick.symbol, "price": tick.price, "time": tick.time.timestamp()}
                        )
                        for ws in list(clients):
                            try:
                                await ws.send(text.decode())
                            except ConnectionClosed:
                                clients.discard(ws)

    asyncio.run(main())


def report(name: str, clients: int, figures: dict, expected: float, max_latency: float) -> bool:
    """A step keeps up when each client gets >= 80% of the updates it should, and fresh ones."""
    keeps_up = figures["p99"] < max_latency and figures["updates_per_client_s"] >= 0.8 * expected
    print(
        f"  {name:<9} {clients:>4} clients: {figures['frames_per_client_s']:7.1f} msgs/s, "
        f"{figures['updates_per_client_s']:7.1f} of {expected:5.0f} expected price updates/s per client "
        f"(ticks: {figures['tick_rate']:.0f}/s); latency p50 {figures['p50'] * 1000:6.1f} ms "
        f"p99 {figures['p99'] * 1000:7.1f} ms  {'keeps up' if keeps_up else 'FALLS BEHIND'}",
        flush=True,
    )
    return keeps_up


async def run_steps(
    name: str, url: str, redis_url: str, counts: list[int], seconds: float, symbols: int | None, limit: float
) -> int:
    """Largest client count that keeps up. `symbols` set: coalesced (a price per symbol per frame)."""
    best = 0
    for clients in counts:
        figures = await step(url, redis_url, clients, seconds)
        rate = figures["tick_rate"]
        expected = min(rate, symbols / FRAME_INTERVAL) if symbols else rate
        if not report(name, clients, figures, expected, limit):
            break
        best = clients
    return best


def store_fills(database_url: str, symbols: list[str], count: int) -> None:
    """`count` fills (buy then sell per symbol, in turn) with their orders, by the storage writer."""
    from datetime import UTC, datetime, timedelta

    import asyncpg

    from tradebot.common.models import Fill, Order, OrderStatus, Side
    from tradebot.storage.schema import ensure_schema
    from tradebot.storage.writer import BatchWriter

    start = datetime.now(UTC) - timedelta(seconds=count)
    messages: list = []
    for n in range(count):
        symbol, side = symbols[(n // 2) % len(symbols)], Side.BUY if n % 2 == 0 else Side.SELL
        at, price = start + timedelta(seconds=n), 100.0 + (n % 7) - (n % 2) * 3 * (n % 3)
        key = f"bench:{n}"
        messages.append(Order.prechecked(id=f"order:{key}", signal_id=key, time=at, strategy="sma_crossover",
                                         symbol=symbol, side=side, quantity=10.0, reference_price=price,
                                         status=OrderStatus.FILLED, reason=""))  # fmt: skip
        messages.append(Fill.prechecked(id=f"fill:{key}", order_id=f"order:{key}", time=at,
                                        symbol=symbol, side=side, quantity=10.0, price=price, fee=1.0,
                                        slippage=0.0))  # fmt: skip

    async def write() -> None:
        conn = await asyncpg.connect(database_url)
        try:
            writer = BatchWriter(conn, await ensure_schema(conn))
            for first in range(0, len(messages), 20_000):
                await writer.write(messages[first : first + 20_000])
        finally:
            await conn.close()

    asyncio.run(write())


PRICED = """(symbols) => document.querySelectorAll('#prices tbody tr').length >= symbols
    && performance.now()"""
READY = """(symbols) => document.querySelectorAll('#prices tbody tr').length >= symbols
    && document.querySelector('#closed-trades tbody tr') !== null
    && Number(document.querySelector('#equity-chart').dataset.points || 0) > 0
    && document.querySelector('#by-symbol tbody tr') !== null
    && performance.now()"""
"""Each is the page's own clock (ms since navigation) at the first frame it holds."""


async def load_page(url: str, symbols: int, loads: int) -> list[tuple[float, float]]:
    """(first contentful paint, time to interactive) in ms of each load, in a fresh page."""
    from playwright.async_api import async_playwright

    chromium = os.environ.get("CHROMIUM", "/usr/bin/chromium")
    found = []
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
        try:
            for _ in range(loads):
                page = await browser.new_page(viewport={"width": 1440, "height": 1100})
                await page.goto(url)
                priced = await (
                    await page.wait_for_function(PRICED, arg=symbols, timeout=120_000, polling="raf")
                ).json_value()
                ready = await (
                    await page.wait_for_function(READY, arg=symbols, timeout=120_000, polling="raf")
                ).json_value()
                print(f"  load: every price shown at {priced:.0f} ms, every panel at {ready:.0f} ms")
                paint = await page.evaluate(
                    "performance.getEntriesByName('first-contentful-paint')[0]?.startTime ?? null"
                )
                found.append((paint or float("nan"), ready))
                await page.close()
        finally:
            await browser.close()
    return found


def page_main(args: argparse.Namespace) -> None:
    from tradebot.local.embedded import EmbeddedPostgres

    symbols = [f"S{i:03d}" for i in range(args.symbols)]
    with tempfile.TemporaryDirectory() as tmp:
        redis, postgres = EmbeddedRedis(Path(tmp) / "redis"), EmbeddedPostgres(Path(tmp) / "postgres")
        api_port, dashboard_port = free_port(), free_port()
        env = {
            "REDIS_URL": redis.start(), "DATABASE_URL": postgres.start(), "SYMBOLS": ",".join(symbols),
            "MAX_SYMBOLS": str(args.symbols), "TICKS_PER_SECOND": str(args.rate), "API_PORT": str(api_port),
            "DASHBOARD_PORT": str(dashboard_port), "API_URL": f"http://127.0.0.1:{api_port}",
            "LOG_LEVEL": "WARNING", "EQUITY_SNAPSHOT_SECONDS": "1",
        }  # fmt: skip
        began = time.monotonic()
        store_fills(env["DATABASE_URL"], symbols, args.fills)
        print(f"stored {args.fills:,} fills and their orders in {time.monotonic() - began:.1f} s")
        names = ("storage", "market_data", "api", "dashboard")
        processes = [start_service(name, env) for name in names]
        try:
            time.sleep(6)  # serving, every symbol priced, an equity snapshot stored
            figures = asyncio.run(load_page(f"http://127.0.0.1:{dashboard_port}/", args.symbols, args.loads))
            print(
                f"page with {args.symbols} symbols and {args.fills:,} stored fills, {args.loads} loads "
                f"(load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores):"
            )
            for name, values in (("first contentful paint", [f[0] for f in figures]),
                                 ("time to interactive", [f[1] for f in figures])):  # fmt: skip
                print(f"  {name:<24} median {statistics.median(values):6.0f} ms, worst {max(values):6.0f} ms")
        finally:
            for process in processes:
                stop(process)
            postgres.stop()
            redis.stop()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rate", type=float, default=1_000, help="ticks per second offered")
    parser.add_argument("--symbols", type=int, default=100)
    parser.add_argument("--clients", default="10,25,50,100,200,400,800")
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--max-latency", type=float, default=1.0, help="p99 seconds that still keeps up")
    parser.add_argument("--page", action="store_true", help="measure the page load instead (see above)")
    parser.add_argument("--fills", type=int, default=100_000, help="stored fills, with --page")
    parser.add_argument("--loads", type=int, default=5, help="page loads, with --page")
    args = parser.parse_args()
    if args.page:
        page_main(args)
        return
    counts = [int(c) for c in args.clients.split(",")]
    symbols = ",".join(f"S{i:03d}" for i in range(args.symbols))
    with tempfile.TemporaryDirectory() as tmp:
        redis = EmbeddedRedis(Path(tmp) / "redis")
        env = {
            "REDIS_URL": redis.start(), "SYMBOLS": symbols, "MAX_SYMBOLS": str(args.symbols),
            "TICKS_PER_SECOND": str(args.rate), "DASHBOARD_PORT": str(free_port()), "LOG_LEVEL": "WARNING",
            "API_URL": "http://127.0.0.1:9", "AUTH_TOKEN": TOKEN,
        }  # fmt: skip
        processes = [start_service("market_data", env), start_service("dashboard", env)]
        naive_port = free_port()
        naive = multiprocessing.Process(target=naive_server, args=(env["REDIS_URL"], naive_port), daemon=True)
        naive.start()
        try:
            time.sleep(4)  # both servers listening, ticks flowing
            print(f"Fan-out at {args.rate:.0f} ticks/s, {args.symbols} symbols, {args.seconds:.0f} s a step:")
            redis_url, limit = env["REDIS_URL"], args.max_latency
            ours = asyncio.run(
                run_steps("dashboard", f"ws://127.0.0.1:{env['DASHBOARD_PORT']}/ws", redis_url, counts,
                          args.seconds, args.symbols, limit)
            )  # fmt: skip
            theirs = asyncio.run(
                run_steps("naive", f"ws://127.0.0.1:{naive_port}", redis_url, counts, args.seconds, 0, limit)
            )
            ratio = f" (×{ours / theirs:.0f})" if theirs else ""
            print(
                f"\nClients served at the live tick rate (>= 80% of updates, p99 latency < {limit:g} s): "
                f"dashboard {ours}, naive per-tick fan-out {theirs}{ratio}"
            )
        finally:
            naive.terminate()
            for process in processes:
                stop(process)
            redis.stop()


if __name__ == "__main__":
    main()
