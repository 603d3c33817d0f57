"""Settings: the original defaults, and clear errors naming the variable."""

from __future__ import annotations

import subprocess
import sys
from datetime import timedelta

import pytest

from tradebot.common.settings import (
    SECRET_SETTINGS,
    AuthMode,
    Settings,
    SettingsError,
    load_settings,
    reveal,
)


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)  # no .env from the developer's checkout
    for name in (
        "SYMBOLS",
        "SYMBOL_MODE",
        "MAX_SYMBOLS",
        "DATA_SOURCE",
        "REDIS_URL",
        "DATABASE_URL",
        "AUTH_TOKEN",
        "AUTH",
    ):
        monkeypatch.delenv(name, raising=False)


def test_original_defaults():
    settings = load_settings()
    assert settings.symbol_mode == "custom"
    assert settings.symbols == ("AAPL", "MSFT", "AMZN", "GOOG", "TSLA")
    assert (settings.max_symbols, settings.max_websocket_symbols) == (500, 30)
    assert (settings.backfill_batch_size, settings.backfill_concurrent_requests) == (10, 3)
    assert settings.rate_limit_delay == 0.5
    assert settings.redis_url == "redis://localhost:6379"


def test_reads_env_file_and_normalises_symbols(tmp_path):
    (tmp_path / ".env").write_text("SYMBOLS= aapl , brk.b,AAPL\nDATA_SOURCE=polygon\n")
    settings = load_settings()
    assert settings.symbols == ("AAPL", "BRK.B")
    assert settings.data_source == "polygon"


@pytest.mark.parametrize(
    ("variable", "value", "expected"),
    [
        ("MAX_SYMBOLS", "-3", "MAX_SYMBOLS='-3' is invalid: Input should be greater than or equal to 1"),
        ("MAX_SYMBOLS", "lots", "MAX_SYMBOLS='lots' is invalid"),
        ("DATA_SOURCE", "yahoo", "DATA_SOURCE='yahoo' is invalid: Input should be 'synthetic', 'alpaca'"),
        ("SYMBOL_MODE", "tiny", "SYMBOL_MODE='tiny' is invalid"),
        ("SYMBOLS", "AAPL,$$$", "SYMBOLS"),
        ("RATE_LIMIT_DELAY", "fast", "RATE_LIMIT_DELAY='fast' is invalid"),
        (
            "TICK_RETENTION",
            "30m",
            "TICK_RETENTION='30m' is invalid: must be at least 1h (or off)",
        ),
        ("TICK_RETENTION", "soon", "TICK_RETENTION='soon' is invalid"),
    ],
)
def test_bad_value_names_the_variable(monkeypatch, variable, value, expected):
    monkeypatch.setenv(variable, value)
    with pytest.raises(SettingsError) as caught:
        load_settings()
    assert expected in str(caught.value)


@pytest.mark.parametrize(
    ("value", "days"),
    [("off", None), ("", None), ("90d", 90), ("2w", 14), ("36h", 1.5), ("P30D", 30), ("86400", 1)],
)
def test_tick_retention_reads_durations(value, days):
    retention = Settings(_env_file=None, tick_retention=value).tick_retention
    assert (None if retention is None else retention / timedelta(days=1)) == days


def test_cross_field_rules():
    with pytest.raises(
        SettingsError, match=r"strategy 'sma_crossover': fast \(30\) must be below slow \(20\)"
    ):
        load_settings(strategy_params={"sma_crossover": {"fast": 30, "slow": 20}})
    with pytest.raises(SettingsError, match="SYMBOLS must list at least one symbol"):
        load_settings(symbol_mode="custom", symbols="")


def test_credentials_problem_names_the_variables():
    assert Settings(data_source="alpaca", _env_file=None).credentials_problem() == (
        "DATA_SOURCE=alpaca needs ALPACA_KEY and ALPACA_SECRET"
    )
    assert Settings(data_source="synthetic", _env_file=None).credentials_problem() is None


def test_service_refuses_to_start_on_bad_settings(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "tradebot", "service", "strategy"],
        env={"PATH": "/usr/bin:/bin", "MAX_SYMBOLS": "many", "HOME": str(tmp_path)},
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert "Configuration error" in result.stderr
    assert "MAX_SYMBOLS='many' is invalid" in result.stderr


CANARY = "canary-7fQ2xZ9mK4pL8vR3"


def test_secrets_stay_out_of_repr_and_error_messages(monkeypatch):
    secrets = {name: f"{CANARY}-{name}" for name in SECRET_SETTINGS}
    assert {"auth_token", "alpaca_key", "alpaca_secret", "polygon_api_key"} <= SECRET_SETTINGS
    settings = Settings(
        _env_file=None, **secrets, redis_url=f"redis://:{CANARY}r@redis:6379",
        database_url=f"postgresql://u:{CANARY}d@db/tradebot",
    )  # fmt: skip
    assert CANARY not in repr(settings) and CANARY not in str(settings)
    assert set(settings.secret_values()) == {*secrets.values(), f"{CANARY}r", f"{CANARY}d"}
    assert reveal(settings.alpaca_secret) == secrets["alpaca_secret"] and reveal(None) == ""
    monkeypatch.setenv("AUTH_TOKEN", "short-secret")
    with pytest.raises(SettingsError) as caught:
        load_settings()
    assert "AUTH_TOKEN is invalid: must be at least 16 characters" in str(caught.value)
    assert "short-secret" not in str(caught.value)


def test_auth_mode_names_what_it_accepts(monkeypatch):
    monkeypatch.setenv("AUTH", "open")
    with pytest.raises(
        SettingsError, match="AUTH='open' is invalid: Input should be 'required' or 'read-open'"
    ):
        load_settings()
    assert load_settings(auth="read-open").auth is AuthMode.READ_OPEN
