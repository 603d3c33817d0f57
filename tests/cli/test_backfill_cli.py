"""`tradebot backfill` and `tradebot backfill benchmark` against the local provider REST servers."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys

import asyncpg
import pytest

from providers.fakes.alpaca import FakeAlpaca
from providers.fakes.polygon import FakePolygon
from support.net import free_port

pytestmark = [pytest.mark.integration, pytest.mark.backends]
RANGE = ("--start", "2024-03-01T13:00:00", "--end", "2024-03-01T16:00:00", "--symbols", "AAPL,MSFT")
EXPECTED_ROWS = 2 * (180 + 1080)  # two symbols, three hours: 1-minute bars and a trade every 10 s


@pytest.fixture
def alpaca(cli_env):
    fake = FakeAlpaca(["AAPL"], page_size=100).start()
    for name, value in (
        ("ALPACA_KEY", fake.key),
        ("ALPACA_SECRET", fake.secret),
        ("ALPACA_DATA_URL", fake.rest_url),
    ):
        cli_env.setenv(name, value)
    cli_env.setenv("RATE_LIMIT_DELAY", "0")
    yield fake
    fake.stop()


async def stored_rows(database_url: str, source: str = "alpaca") -> int:
    conn = await asyncpg.connect(database_url)
    try:
        bars = await conn.fetchval(f"SELECT count(*) FROM provider_bars_1m_{source}")
        return bars + await conn.fetchval(f"SELECT count(*) FROM price_ticks_{source}")
    finally:
        await conn.close()


async def test_backfill_then_nothing_left_to_do(invoke, alpaca, database_url):
    result = await invoke("backfill", "--source", "alpaca", *RANGE)
    assert result.exit_code == 0, result.output
    assert f"Done: {EXPECTED_ROWS:,} rows" in result.output and "rows/s" in result.output
    assert await stored_rows(database_url) == EXPECTED_ROWS
    again = await invoke("backfill", "--source", "alpaca", *RANGE)
    assert again.exit_code == 0 and "4/4 already complete" in again.output
    restarted = await invoke("backfill", "--source", "alpaca", "--restart", *RANGE)
    assert restarted.exit_code == 0 and f"Done: {EXPECTED_ROWS:,} rows" in restarted.output
    assert await stored_rows(database_url) == EXPECTED_ROWS, "a second full run stores nothing twice"


async def test_backfill_resumes_after_sigkill(invoke, alpaca, cli_env, database_url):
    cli_env.setenv("RATE_LIMIT_DELAY", "0.1")
    cli_env.setenv("BACKFILL_CONCURRENT_REQUESTS", "1")
    command = [sys.executable, "-m", "tradebot", "backfill", "--source", "alpaca", *RANGE]
    process = subprocess.Popen(
        command, env=dict(os.environ), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    try:
        for _ in range(300):
            if alpaca.rest_requests >= 8:
                break
            await asyncio.sleep(0.05)
        os.kill(process.pid, signal.SIGKILL)
        process.wait(timeout=10)
    finally:
        if process.poll() is None:
            process.kill()
    partial = await stored_rows(database_url)
    assert 0 < partial < EXPECTED_ROWS, "killed mid-way with some pages stored"
    requests_before = alpaca.rest_requests
    cli_env.setenv("RATE_LIMIT_DELAY", "0")
    result = await invoke("backfill", "--source", "alpaca", *RANGE)
    assert result.exit_code == 0, result.output
    assert await stored_rows(database_url) == EXPECTED_ROWS
    assert alpaca.rest_requests - requests_before < 26, "resumed from the checkpoints, not from scratch"


async def test_backfill_refusals(invoke, cli_env, alpaca):
    cli_env.setenv("DATA_SOURCE", "synthetic")
    no_source = await invoke("backfill", *RANGE)
    assert no_source.exit_code == 2 and "--source alpaca or polygon" in no_source.output
    no_key = await invoke("backfill", "--source", "polygon", *RANGE)
    assert no_key.exit_code == 2 and "POLYGON_API_KEY not set" in no_key.output
    bad_kind = await invoke("backfill", "--source", "alpaca", "--kind", "quotes", *RANGE)
    assert bad_kind.exit_code == 2 and "--kind 'quotes'" in bad_kind.output
    empty = await invoke("backfill", "--source", "alpaca", "--start", "2024-03-02", "--end", "2024-03-01")
    assert empty.exit_code == 2 and "the range is empty" in empty.output
    bad_symbol = await invoke("backfill", "--source", "alpaca", "--symbols", "AAPL,no way", "--days", "1")
    assert bad_symbol.exit_code == 2 and "--symbols" in bad_symbol.output
    cli_env.setenv("ALPACA_SECRET", "wrong")
    rejected = await invoke("backfill", "--source", "alpaca", *RANGE)
    assert rejected.exit_code == 1
    assert (
        "rejected the credentials in ALPACA_KEY/ALPACA_SECRET" in rejected.output and "401" in rejected.output
    )


async def test_benchmark_compares_the_four_configurations(invoke, cli_env):
    fake = FakePolygon(["AAPL"], page_size=500).start()
    try:
        cli_env.setenv("POLYGON_API_KEY", fake.key)
        cli_env.setenv("POLYGON_REST_URL", fake.rest_url)
        fake.storm(3)
        result = await invoke(
            "backfill",
            "benchmark",
            "--source",
            "polygon",
            "--days",
            "0.05",
            "--end",
            "2024-03-01T16:00:00",
            "--symbols",
            "AAPL",
        )
    finally:
        fake.stop()
    assert result.exit_code == 0, result.output
    for name in ("conservative", "balanced", "aggressive", "high performance"):
        assert name in result.output
    assert "429s" in result.output and "rows/s" in result.output


async def test_an_unknown_source_is_named(invoke, cli_env):
    """Issue 19: `--source bloomberg` used to be answered as if no source were given."""
    cli_env.setenv("DATA_SOURCE", "alpaca")
    unknown = await invoke("backfill", "--source", "bloomberg", *RANGE)
    assert (
        unknown.exit_code == 2 and "'bloomberg'" in unknown.output and "alpaca or polygon" in unknown.output
    )


async def test_backfill_without_network_says_where_and_why(invoke, cli_env):
    """Issue 19 item 18: no traceback; each retry and the final error name the host and the reason."""
    url = f"http://127.0.0.1:{free_port()}"
    for name, value in (("ALPACA_KEY", "k"), ("ALPACA_SECRET", "s"), ("ALPACA_DATA_URL", url)):
        cli_env.setenv(name, value)
    result = await invoke("backfill", "--source", "alpaca", *RANGE)
    assert result.exit_code == 1, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    assert f"cannot reach Alpaca at {url}" in result.output and "ConnectError" in result.output
    assert "Traceback" not in result.output and len(result.output.splitlines()) < 40
