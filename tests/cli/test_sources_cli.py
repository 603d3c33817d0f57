"""`tradebot sources`: list, create, clean, migrate and compare on real PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import asyncpg
import pytest

from tradebot.common import timescaledb
from tradebot.common.models import PriceTick
from tradebot.storage.schema import ensure_schema
from tradebot.storage.writer import BatchWriter

pytestmark = [pytest.mark.integration, pytest.mark.backends]
T0 = datetime(2024, 3, 1, 15, tzinfo=UTC)


async def seed(database_url: str, source: str, symbols: dict[str, int]) -> None:
    conn = await asyncpg.connect(database_url)
    try:
        writer = BatchWriter(conn, await ensure_schema(conn, (source,)))
        ticks = [
            PriceTick(
                id=f"t{i}", source=source, symbol=symbol, time=T0 + timedelta(seconds=i), price=10 + i, size=1
            )
            for symbol, count in symbols.items()
            for i in range(count)
        ]
        await writer.write(ticks)
    finally:
        await conn.close()


async def count(database_url: str, table: str) -> int:
    conn = await asyncpg.connect(database_url)
    try:
        return await conn.fetchval(f"SELECT count(*) FROM {table}")
    finally:
        await conn.close()


async def test_create_and_list(invoke, postgres_backend):
    created = await invoke("sources", "create", "--source", "alpaca")
    assert created.exit_code == 0 and "price_ticks_alpaca and price_bars_1m_alpaca created" in created.output
    again = await invoke("sources", "create", "--source", "alpaca")
    assert "already existed" in again.output
    listed = await invoke("sources", "list")
    assert listed.exit_code == 0 and "alpaca" in listed.output
    caption = " ".join(listed.output.split())  # rich wraps it
    if postgres_backend == "timescaledb":
        assert f"TimescaleDB {timescaledb.VERSION} on PostgreSQL 18." in caption
        assert "ticks in compressed hypertables, bars 1m to 1d in continuous aggregates" in caption
    else:
        assert "PostgreSQL 18." in caption and "TimescaleDB" not in caption
        assert "ticks in plain tables, 1m bars rolled up by storage" in caption
    refused = await invoke("sources", "create", "--source", "Bad-Name")
    assert refused.exit_code == 2 and "not a valid source name" in refused.output


async def test_migrate_then_compare(invoke, database_url):
    await seed(database_url, "synthetic", {"AAPL": 5, "MSFT": 3})
    only_aapl = await invoke(
        "sources", "migrate", "--source", "synthetic", "--target", "polygon", "--symbol", "aapl", "--yes"
    )
    assert only_aapl.exit_code == 0 and "Copied 5 new ticks" in only_aapl.output
    everything = await invoke("sources", "migrate", "--source", "synthetic", "--target", "polygon", "-y")
    assert "Copied 3 new ticks" in everything.output and "(5 were there already)" in everything.output
    assert await count(database_url, "price_ticks_polygon") == 8
    assert await count(database_url, "price_bars_1m_polygon") > 0, "bars follow the migrated ticks"
    compared = await invoke("sources", "compare", "--source", "synthetic", "--target", "polygon")
    assert compared.exit_code == 0 and "AAPL" in compared.output and "MSFT" in compared.output
    await seed(database_url, "synthetic", {"TSLA": 2})
    differs = await invoke(
        "sources", "compare", "--source", "synthetic", "--target", "polygon", "--symbol", "TSLA"
    )
    row = next(line for line in differs.output.splitlines() if "TSLA" in line)
    cells = [cell.strip() for cell in row.split("│")[1:-1]]
    assert cells[:5] == ["TSLA", "2", "0", "2", "0"], row


async def test_migrate_refusals(invoke, database_url):
    await seed(database_url, "synthetic", {"AAPL": 2})
    same = await invoke("sources", "migrate", "--source", "synthetic", "--target", "synthetic", "--yes")
    assert same.exit_code == 2 and "the same source" in same.output
    missing = await invoke("sources", "migrate", "--source", "nosuch", "--target", "alpaca", "--yes")
    assert missing.exit_code == 1 and "no data source 'nosuch'" in missing.output
    declined = await invoke("sources", "migrate", "--source", "synthetic", "--target", "alpaca", input="n\n")
    assert declined.exit_code == 1 and "nothing copied" in declined.output
    bad_symbol = await invoke(
        "sources", "migrate", "--source", "synthetic", "--target", "x", "--symbol", "a b"
    )
    assert bad_symbol.exit_code == 2


async def test_clean_asks_first(invoke, database_url):
    await seed(database_url, "synthetic", {"AAPL": 4, "MSFT": 2})
    declined = await invoke("sources", "clean", "--source", "synthetic", input="n\n")
    assert declined.exit_code == 1 and "nothing deleted" in declined.output
    assert await count(database_url, "price_ticks_synthetic") == 6
    one = await invoke("sources", "clean", "--source", "synthetic", "--symbol", "MSFT", input="y\n")
    assert one.exit_code == 0 and "Delete 2 ticks" in one.output, one.output
    assert await count(database_url, "price_ticks_synthetic") == 4
    everything = await invoke("sources", "clean", "--source", "synthetic", "--yes")
    assert everything.exit_code == 0 and "4 rows from price_ticks_synthetic" in everything.output
    assert await count(database_url, "price_ticks_synthetic") == 0
    assert await count(database_url, "price_bars_1m_synthetic") == 0
    missing = await invoke("sources", "clean", "--source", "nosuch", "--yes")
    assert missing.exit_code == 1
