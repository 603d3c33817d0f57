"""Running `tradebot` commands in-process (CliRunner) against this test's servers."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import pytest
from click.testing import Result
from typer.testing import CliRunner

from tradebot.cli.main import app

PROVIDER_VARIABLES = (
    "DATA_SOURCE", "ALPACA_KEY", "ALPACA_SECRET", "POLYGON_API_KEY", "ALPACA_DATA_URL", "ALPACA_STREAM_URL",
    "ALPACA_TRADING_URL", "POLYGON_REST_URL", "POLYGON_WS_URL", "SYMBOL_MODE", "SYMBOLS",
)  # fmt: skip

Invoke = Callable[..., Awaitable[Result]]


@pytest.fixture
def cli_env(monkeypatch, tmp_path, redis_url, database_url):
    """A clean environment: this test's servers, no provider settings, a private SYMBOLS_FILE, no .env."""
    for name in PROVIDER_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("DATABASE_URL", database_url)
    monkeypatch.setenv("REDIS_URL", redis_url)
    monkeypatch.setenv("SYMBOLS_FILE", str(tmp_path / "symbols.json"))
    monkeypatch.setenv("COLUMNS", "200")
    return monkeypatch


@pytest.fixture
def invoke(cli_env) -> Invoke:
    """`await invoke("sources", "clean", ..., input="y\\n")`, in a thread: commands call asyncio.run."""

    async def run(*args: str, input: str | None = None) -> Result:
        return await asyncio.to_thread(CliRunner().invoke, app, list(args), input=input)

    return run
