"""`tradebot db backup | restore | list` end to end on the embedded PostgreSQL (the CronJob's code)."""

from __future__ import annotations

import gzip
from pathlib import Path

import asyncpg
import pytest

from support.servers import create_database, drop_database
from tradebot.storage.backup import TABLES_SQL, backups

pytestmark = pytest.mark.integration


async def snapshot(url: str) -> dict[str, list[tuple]]:
    """Every table's rows, in a stable order: what a restore must give back exactly."""
    conn = await asyncpg.connect(url)
    try:
        tables = [r[0] for r in await conn.fetch(TABLES_SQL)]
        return {t: sorted(tuple(r) for r in await conn.fetch(f"SELECT * FROM {t}")) for t in tables}
    finally:
        await conn.close()


@pytest.fixture
async def other_database(postgres_server_url: str):
    name, url = await create_database(postgres_server_url)
    yield url
    await drop_database(postgres_server_url, name)


async def test_backup_then_restore_gives_every_row_back(
    invoke, database_url, other_database, tmp_path, cli_env
):
    # Fast, eager strategy parameters: the cautious defaults may not fill an order in half an hour.
    cli_env.setenv("STRATEGY_PARAMS", '{"sma_crossover": {"fast": 3, "slow": 8, "input": "trades"}}')
    cli_env.setenv("MIN_SIGNAL_STRENGTH", "0")
    cli_env.setenv("COOLDOWN_SECONDS", "0")
    seeded = await invoke("demo", "--hours", "0.5", "--step", "30")
    assert seeded.exit_code == 0, seeded.output
    before = await snapshot(database_url)
    assert sum(len(rows) for rows in before.values()) > 100 and before["fills"], {
        t: len(r) for t, r in before.items()
    }

    made = await invoke("db", "backup", "--dir", str(tmp_path / "b"))
    assert made.exit_code == 0, made.output
    (path,) = backups(tmp_path / "b")
    assert path.name in made.output and f"{len(before)} tables" in made.output

    cli_env.setenv("DATABASE_URL", other_database)
    restored = await invoke("db", "restore", str(tmp_path / "b"))
    assert restored.exit_code == 0, restored.output
    assert await snapshot(other_database) == before

    # A second restore would mix two histories: refused, unless asked to replace.
    again = await invoke("db", "restore", str(path))
    assert again.exit_code == 1 and "--replace" in again.output
    replaced = await invoke("db", "restore", str(path), "--replace", "--yes")
    assert replaced.exit_code == 0, replaced.output
    assert await snapshot(other_database) == before

    listed = await invoke("db", "list", "--dir", str(tmp_path / "b"))
    assert path.name in listed.output


async def test_a_damaged_backup_restores_nothing(invoke, database_url, other_database, tmp_path, cli_env):
    assert (await invoke("demo", "--hours", "0.2", "--step", "30")).exit_code == 0
    assert (await invoke("db", "backup", "--dir", str(tmp_path))).exit_code == 0
    (path,) = backups(tmp_path)
    victim = path / "tables" / "price_ticks_synthetic.tsv.gz"
    rows = gzip.decompress(victim.read_bytes()).splitlines(keepends=True)
    victim.write_bytes(gzip.compress(b"".join(rows[:-1])))  # one tick lost

    cli_env.setenv("DATABASE_URL", other_database)
    result = await invoke("db", "restore", str(path))
    assert result.exit_code == 1 and "price_ticks_synthetic.tsv.gz is damaged" in result.output
    assert not any((await snapshot(other_database)).values())  # one transaction: nothing half-restored


async def test_retention_keeps_the_newest_and_refusals_are_clear(
    invoke, database_url, tmp_path: Path, cli_env
):
    for _ in range(3):
        assert (await invoke("db", "backup", "--dir", str(tmp_path), "--keep", "2")).exit_code == 0
    kept = backups(tmp_path)
    assert len(kept) == 2 and not [p for p in tmp_path.iterdir() if p.name.startswith(".partial-")]

    missing = await invoke("db", "restore", str(tmp_path / "nothing-here"))
    assert missing.exit_code == 1 and "no TradeBot backup" in missing.output
    cli_env.setenv("DATABASE_URL", "postgresql://nobody@127.0.0.1:1/none")
    unreachable = await invoke("db", "backup", "--dir", str(tmp_path))
    assert unreachable.exit_code == 1 and "backup failed" in unreachable.output
    assert len(backups(tmp_path)) == 2
