"""The pure parts of the TimescaleDB storage: chunk sizing, SQL literals, server settings, names."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from tradebot.api.models import Interval
from tradebot.api.sources import sources_from_tables
from tradebot.common import timescaledb
from tradebot.common.tables import BAR_WIDTHS, bar_table
from tradebot.local.embedded import server_conf
from tradebot.storage.schema import ROLLUPS, TickPolicy, chunk_interval, interval_sql, policy_ddl


def test_chunks_hold_about_ten_million_ticks_within_an_hour_and_a_week():
    assert chunk_interval(10_000_000 / 86_400) == timedelta(days=1)
    assert chunk_interval(50_000) == timedelta(hours=1)  # the benchmark's rate: never below an hour
    assert chunk_interval(2) == timedelta(days=7)  # a quiet source: never above a week
    assert chunk_interval(0) == timedelta(days=7)
    assert chunk_interval(1_000) == timedelta(hours=3)  # 10 M / 1,000 per s = 2.8 h, in whole hours


def test_every_api_interval_has_its_own_bars_and_each_rolls_up_the_one_below():
    assert tuple(interval.value for interval in Interval) == BAR_WIDTHS
    assert [(width, below) for width, _, below, _, _ in ROLLUPS] == list(
        zip(BAR_WIDTHS[1:], BAR_WIDTHS, strict=False)
    )


def test_the_catalog_finds_the_wider_bars_that_exist():
    names = [
        "price_ticks_synthetic",
        bar_table("synthetic"),
        bar_table("synthetic", "1h"),
        "price_ticks_polygon",
    ]
    found = sources_from_tables(names)
    assert found["synthetic"].bars == "price_bars_1m_synthetic"
    assert found["synthetic"].wider_bars == {"1h": "price_bars_1h_synthetic"}
    assert found["polygon"].bars is None and found["polygon"].wider_bars == {}


def test_policies_follow_the_retention():
    assert interval_sql(None) == "NULL" and interval_sql(timedelta(days=2)) == "INTERVAL '172800 seconds'"
    kept = policy_ddl("synthetic", TickPolicy(), timedelta(hours=6))
    assert not any("add_retention_policy" in statement for statement in kept)
    assert any("compress_after => INTERVAL '21600 seconds'" in statement for statement in kept)
    dropped = policy_ddl("synthetic", TickPolicy(retention=timedelta(days=30)), timedelta(days=1))
    assert any(
        "add_retention_policy('price_ticks_synthetic', drop_after => INTERVAL '2592000 seconds')" in s
        for s in dropped
    )
    assert any("start_offset => INTERVAL '2592000 seconds'" in s for s in dropped)


def test_the_embedded_server_loads_the_build_with_the_kubernetes_settings(tmp_path: Path):
    settings = timescaledb.embedded_settings(tmp_path)
    assert timescaledb.SERVER_SETTINGS.items() <= settings.items()
    assert settings["extension_control_path"] == f"{tmp_path / 'share'}:$system"
    assert settings["dynamic_library_path"] == f"{tmp_path / 'lib'}:$libdir"
    assert server_conf({"a": "it's", "b": "x"}) == "a = 'it''s'\nb = 'x'\n"
    assert timescaledb.find_build("18.6", tmp_path) is None  # nothing built there


def test_the_backend_is_named():
    assert timescaledb.backend_name("2.29.2", "18.6") == "TimescaleDB 2.29.2 on PostgreSQL 18.6"
    assert timescaledb.backend_name(None, "18.6 (Debian 18.6-1)") == "PostgreSQL 18.6"
