"""What TimescaleDB gives the storage schema, on the real extension: hypertables, hierarchical
real-time continuous aggregates, compression, retention and refresh policies, and the
upgrade in place of a data directory made on plain PostgreSQL."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from itertools import pairwise
from pathlib import Path

import asyncpg
import pytest

from tradebot.common import timescaledb
from tradebot.common.models import PriceTick
from tradebot.common.tables import BAR_WIDTHS, bar_table, tick_table
from tradebot.local.embedded import EmbeddedPostgres, wheel_postgres_version
from tradebot.storage.schema import SchemaError, TickPolicy, ensure_schema, refresh_bars
from tradebot.storage.writer import BatchWriter

pytestmark = pytest.mark.integration
T0 = datetime(2026, 1, 5, tzinfo=UTC)  # a Monday, midnight UTC
WIDTHS = {"1m": 60, "5m": 300, "15m": 900, "1h": 3_600, "1d": 86_400}  # seconds


def ticks(start: datetime, count: int, step: timedelta, symbols=("AAPL", "MSFT"), first_id: int = 0):
    return [
        PriceTick(
            id=f"{symbol}-{first_id + i}",
            source="synthetic",
            symbol=symbol,
            time=start + i * step,
            price=100 + (i % 97) * 0.5 + (10 if symbol == "MSFT" else 0),
            size=1 + i % 3,
        )
        for symbol in symbols
        for i in range(count)
    ]


def expected_bars(rows: list[PriceTick], symbol: str, seconds: int) -> list[tuple]:
    """The bars of one symbol at one width, computed here from the ticks themselves."""
    buckets: dict[datetime, list[PriceTick]] = {}
    for tick in sorted((t for t in rows if t.symbol == symbol), key=lambda t: t.time):
        start = T0 + timedelta(seconds=(tick.time - T0).total_seconds() // seconds * seconds)
        buckets.setdefault(start, []).append(tick)
    return [
        (
            start,
            b[0].price,
            max(t.price for t in b),
            min(t.price for t in b),
            b[-1].price,
            float(sum(t.size for t in b)),
            len(b),
        )
        for start, b in sorted(buckets.items())
    ]


async def stored_bars(conn: asyncpg.Connection, width: str, symbol: str) -> list[tuple]:
    rows = await conn.fetch(
        f"SELECT bucket, open, high, low, close, volume, trades FROM {bar_table('synthetic', width)}"
        " WHERE symbol = $1 ORDER BY bucket",
        symbol,
    )
    return [tuple(row) for row in rows]


def test_kubernetes_runs_the_timescaledb_and_postgresql_major_the_embedded_server_runs() -> None:
    major = wheel_postgres_version().split(".")[0]
    assert f"timescale/timescaledb:{timescaledb.VERSION}-pg{major}" == timescaledb.IMAGE
    build = timescaledb.find_build(wheel_postgres_version())
    assert build is not None and f"timescaledb {timescaledb.VERSION}" in (build / "versions.txt").read_text()


@pytest.fixture
async def conn(database_url: str):
    connection = await asyncpg.connect(database_url)
    yield connection
    await connection.close()


async def test_ticks_are_a_hypertable_compressed_by_symbol_with_every_policy(conn):
    schema = await ensure_schema(conn, ("synthetic",), TickPolicy(retention=timedelta(days=30)))
    assert schema.timescale
    ticks_table = tick_table("synthetic")
    [hypertable] = await conn.fetch(
        "SELECT compression_enabled FROM timescaledb_information.hypertables WHERE hypertable_name = $1",
        ticks_table,
    )
    assert hypertable["compression_enabled"]
    settings = await conn.fetchrow(
        "SELECT segmentby, orderby FROM timescaledb_information.hypertable_compression_settings"
        " WHERE hypertable = $1::regclass",
        ticks_table,
    )
    assert settings["segmentby"] == "symbol" and settings["orderby"] == '"time",id'
    # Each wider width is an aggregate on the one below, all real-time.
    aggregates = {
        row["view_name"]: row
        for row in await conn.fetch(
            "SELECT view_name, materialized_only, view_definition"
            " FROM timescaledb_information.continuous_aggregates"
        )
    }
    assert set(aggregates) == {bar_table("synthetic", width) for width in BAR_WIDTHS}
    assert not any(row["materialized_only"] for row in aggregates.values())
    for below, width in pairwise(BAR_WIDTHS):
        definition = aggregates[bar_table("synthetic", width)]["view_definition"]
        assert f"FROM {bar_table('synthetic', below)}" in definition
    jobs = await conn.fetch(
        "SELECT proc_name, hypertable_name, config FROM timescaledb_information.jobs"
        " WHERE hypertable_schema = current_schema()"
    )
    by_kind = {}
    for job in jobs:
        by_kind.setdefault(job["proc_name"], {})[job["hypertable_name"]] = json.loads(job["config"])
    assert set(by_kind["policy_compression"]) == {ticks_table}
    assert by_kind["policy_retention"][ticks_table]["drop_after"] == "720:00:00"  # 30 days
    refreshes = by_kind["policy_refresh_continuous_aggregate"]
    assert set(refreshes) == set(aggregates)
    # The 1m refresh never reaches back past the retention: it would empty bars of dropped ticks.
    assert refreshes[bar_table("synthetic")]["start_offset"] == "720:00:00"
    assert refreshes[bar_table("synthetic", "5m")]["start_offset"] is None

    # Without retention, the policy goes (the storage service applies the settings at each start).
    await ensure_schema(conn, ("synthetic",), TickPolicy())
    retention = await conn.fetchval(
        "SELECT count(*) FROM timescaledb_information.jobs WHERE proc_name = 'policy_retention'"
    )
    assert retention == 0


async def test_bars_of_every_width_are_the_ticks_aggregated_before_and_after_materialising(conn):
    schema = await ensure_schema(conn, ("synthetic",))
    writer = BatchWriter(conn, schema)
    history = ticks(T0, 2_000, timedelta(seconds=97))  # a little over two days
    await writer.write(history)
    for width, seconds in WIDTHS.items():  # nothing materialised: all aggregated at query time
        assert await stored_bars(conn, width, "AAPL") == expected_bars(history, "AAPL", seconds), width
    await refresh_bars(conn, "synthetic")
    for row in await conn.fetch(
        "SELECT view_name, format('%I.%I', materialization_hypertable_schema,"
        " materialization_hypertable_name) AS materialised FROM timescaledb_information.continuous_aggregates"
    ):
        assert await conn.fetchval(f"SELECT count(*) FROM {row['materialised']}"), row["view_name"]
    later = ticks(T0 + timedelta(days=3), 500, timedelta(seconds=97), first_id=2_000)
    await writer.write(later)  # past every level's materialised buckets: aggregated at query time, at once
    for width, seconds in WIDTHS.items():
        assert await stored_bars(conn, width, "MSFT") == expected_bars(history + later, "MSFT", seconds), (
            width
        )
    # A late tick in a materialised bucket shows once refreshed (by the policies, or a bulk writer now).
    late = ticks(T0 + timedelta(seconds=5), 1, timedelta(seconds=1), first_id=9_000)
    await writer.write(late)
    await refresh_bars(conn, "synthetic")
    for width, seconds in WIDTHS.items():
        everything = history + later + late
        assert await stored_bars(conn, width, "AAPL") == expected_bars(everything, "AAPL", seconds), width


async def test_compressed_chunks_keep_every_tick_in_far_less_space(conn):
    schema = await ensure_schema(conn, ("synthetic",))
    history = ticks(T0, 20_000, timedelta(seconds=13))  # three days: three chunks
    await BatchWriter(conn, schema).write(history)
    table = tick_table("synthetic")
    before = await conn.fetchval("SELECT hypertable_size($1::regclass)", table)
    # the compression policy may have got to a chunk first
    compressed = await conn.fetch(
        f"SELECT compress_chunk(c, if_not_compressed => true) FROM show_chunks('{table}') c"
    )
    assert len(compressed) >= 3
    after = await conn.fetchval("SELECT hypertable_size($1::regclass)", table)
    assert after * 3 < before, (before, after)
    assert await conn.fetchval(f"SELECT count(*) FROM {table}") == len(history)
    await refresh_bars(conn, "synthetic")
    assert await stored_bars(conn, "1h", "AAPL") == expected_bars(history, "AAPL", 3_600)
    # A replayed batch into a compressed chunk stores nothing twice.
    await BatchWriter(conn, schema).write(history[:100])
    assert await conn.fetchval(f"SELECT count(*) FROM {table}") == len(history)


async def test_a_plain_postgresql_data_directory_is_upgraded_in_place(tmp_path: Path, monkeypatch):
    data_dir = tmp_path / "postgres"
    tmp_path.chmod(0o755)  # the server runs as the wheel's own user
    history = ticks(T0, 600, timedelta(seconds=31))
    expected = {width: expected_bars(history, "AAPL", seconds) for width, seconds in WIDTHS.items()}

    # First without a TimescaleDB build: plain PostgreSQL, storage rolls the 1m bars up.
    with monkeypatch.context() as unbuilt:
        unbuilt.setenv("TRADEBOT_CACHE_DIR", str(tmp_path / "no-builds-here"))
        server = EmbeddedPostgres(data_dir)
        url = server.start()
        try:
            assert server.backend == "PostgreSQL"
            conn = await asyncpg.connect(url)
            schema = await ensure_schema(conn, ("synthetic",))
            assert not schema.timescale
            await BatchWriter(conn, schema).write(history)
            assert await stored_bars(conn, "1m", "AAPL") == expected["1m"]
            await conn.close()
        finally:
            server.stop()

    # Then with the build: the same directory, now TimescaleDB, same ticks and bars.
    server = EmbeddedPostgres(data_dir)
    url = server.start()
    try:
        assert server.backend.startswith("TimescaleDB")
        conn = await asyncpg.connect(url)
        schema = await ensure_schema(conn, ("synthetic",))
        assert schema.timescale
        assert await conn.fetchval(f"SELECT count(*) FROM {tick_table('synthetic')}") == len(history)
        assert await conn.fetchval(
            "SELECT count(*) FROM timescaledb_information.hypertables WHERE hypertable_name = $1",
            tick_table("synthetic"),
        )
        for width, bars in expected.items():
            assert await stored_bars(conn, width, "AAPL") == bars, width
        more = ticks(T0 + 600 * timedelta(seconds=31), 50, timedelta(seconds=31), first_id=600)
        await BatchWriter(conn, schema).write(more)
        assert await stored_bars(conn, "1h", "AAPL") == expected_bars(history + more, "AAPL", 3_600)
        await conn.close()
    finally:
        server.stop()

    # Back on a server without the extension, the database says what it needs instead of failing later.
    monkeypatch.setenv("TRADEBOT_CACHE_DIR", str(tmp_path / "no-builds-here"))
    server = EmbeddedPostgres(data_dir)
    url = server.start()
    try:
        conn = await asyncpg.connect(url)
        with pytest.raises(SchemaError, match="uses TimescaleDB, but its server cannot load"):
            await ensure_schema(conn, ("synthetic",))
        await conn.close()
    finally:
        server.stop()
