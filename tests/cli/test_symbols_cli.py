"""`tradebot symbols`: list, test, fetch (through alpaca-py against the local Alpaca), benchmark, samples."""

from __future__ import annotations

import json

import pytest

from providers.fakes.alpaca import FakeAlpaca, asset

pytestmark = pytest.mark.integration


async def test_list_a_mode_with_a_limit(invoke):
    result = await invoke("symbols", "list", "popular", "--limit", "5")
    assert result.exit_code == 0, result.output
    assert "AAPL" in result.output and "5 symbols" in result.output and "Universe: packaged" in result.output


async def test_list_refuses_an_unknown_mode(invoke):
    result = await invoke("symbols", "list", "tiny")
    assert result.exit_code == 2 and "unknown symbol mode 'tiny'" in result.output


async def test_test_checks_every_mode(invoke, cli_env):
    cli_env.setenv("SYMBOL_MODE", "large")
    result = await invoke("symbols", "test")
    assert result.exit_code == 0, result.output
    assert "◀ SYMBOL_MODE" in result.output and "OK" in result.output
    cli_env.setenv("SYMBOLS", "AAPL,not a symbol")
    refused = await invoke("symbols", "test")
    assert refused.exit_code == 2 and "SYMBOLS" in refused.output


@pytest.fixture
def alpaca_assets():
    fake = FakeAlpaca(["AAPL"], assets=[
        asset("AAPL"), asset("MSFT"), asset("NEWCO", exchange="NYSE"),
        asset("DEAD", status="inactive"), asset("NOPE", tradable=False), asset("BAD SYMBOL"),
    ]).start()  # fmt: skip
    yield fake
    fake.stop()


async def test_fetch_refreshes_the_universe_from_alpaca_assets(invoke, cli_env, alpaca_assets, tmp_path):
    cli_env.setenv("ALPACA_KEY", alpaca_assets.key)
    cli_env.setenv("ALPACA_SECRET", alpaca_assets.secret)
    cli_env.setenv("ALPACA_TRADING_URL", alpaca_assets.rest_url)
    result = await invoke("symbols", "fetch")
    assert result.exit_code == 0, result.output
    written = json.loads((tmp_path / "symbols.json").read_text())
    assert written["modes"]["popular"] == ["AAPL", "MSFT"]
    assert written["modes"]["all"] == ["AAPL", "MSFT", "NEWCO"]
    listed = await invoke("symbols", "list", "all")
    assert str(tmp_path / "symbols.json") in listed.output and "NEWCO" in listed.output
    assert "DEAD" not in listed.output and "NOPE" not in listed.output


async def test_fetch_refusals(invoke, cli_env, alpaca_assets):
    missing = await invoke("symbols", "fetch")
    assert missing.exit_code == 2 and "ALPACA_KEY and ALPACA_SECRET not set" in missing.output
    cli_env.setenv("ALPACA_KEY", alpaca_assets.key)
    cli_env.setenv("ALPACA_SECRET", "wrong")
    cli_env.setenv("ALPACA_TRADING_URL", alpaca_assets.rest_url)
    rejected = await invoke("symbols", "fetch")
    assert rejected.exit_code == 1
    assert "Alpaca rejected" in rejected.output and "401" in rejected.output


async def test_benchmark_times_every_mode(invoke):
    result = await invoke("symbols", "benchmark", "--rounds", "3")
    assert result.exit_code == 0, result.output
    for mode in ("custom", "popular", "large", "mid", "small", "all"):
        assert mode in result.output


async def test_samples_write_one_env_per_mode_and_never_overwrite_silently(invoke, tmp_path):
    result = await invoke("symbols", "samples", "--dir", "env", "--source", "alpaca")
    assert result.exit_code == 0, result.output
    written = sorted(p.name for p in (tmp_path / "env").iterdir())
    assert written == [".env.all", ".env.custom", ".env.large", ".env.mid", ".env.popular", ".env.small"]
    assert "SYMBOL_MODE=mid" in (tmp_path / "env" / ".env.mid").read_text()
    again = await invoke("symbols", "samples", "--dir", "env")
    assert again.exit_code == 2 and "refusing to overwrite" in again.output
    forced = await invoke("symbols", "samples", "--dir", "env", "--force")
    assert forced.exit_code == 0
    bad = await invoke("symbols", "samples", "--source", "yahoo")
    assert bad.exit_code == 2


async def test_help_shows_flags_without_a_value_placeholder(invoke):
    """Issue 19: `--help` showed `<bool>` beside flags, as if they took a value."""
    for command in (["backfill", "--help"], ["sources", "clean", "--help"], ["symbols", "samples", "--help"]):
        result = await invoke(*command)
        assert result.exit_code == 0 and "--help" in result.output
        assert "<bool>" not in result.output and "BOOLEAN" not in result.output, result.output
