"""Logical backups of the database: what `tradebot db backup` / `restore` and the CronJob run.

A backup is a directory `tradebot-<UTC time>/` holding `manifest.json` and one gzipped
COPY text file per table. All tables are read in one REPEATABLE READ snapshot, so the
backup is consistent; hypertables are read through SELECT (their chunks, compressed or
not), continuous aggregates are not stored (they are views, refreshed after a restore).
It is written under `.partial-…` and renamed when complete, so an interrupted backup never
looks like one. The same code runs on plain PostgreSQL and on TimescaleDB, and a backup
from one restores into the other: restore creates the schema with the storage service's
own DDL (`storage.schema`), a table it does not know from the columns in the manifest.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import re
import shutil
from collections.abc import AsyncIterator, Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg

from tradebot import __version__
from tradebot.common.tables import tick_table
from tradebot.providers.registry import DATA_SOURCES
from tradebot.storage.schema import ensure_schema, refresh_bars

FORMAT = 1
PREFIX = "tradebot-"
MANIFEST = "manifest.json"
CHUNK = 1 << 20
NAME = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")  # a table name we are willing to put into SQL
Progress = Callable[[str, int, int], None]  # (table, rows done, rows total)


class BackupError(RuntimeError):
    """A backup or restore that cannot go on; the message says why and what to do."""


@dataclass(frozen=True)
class Column:
    name: str
    type: str
    not_null: bool
    default: str | None = None


@dataclass(frozen=True)
class TableDump:
    name: str
    columns: list[Column]
    primary_key: list[str]
    rows: int
    file: str
    sha256: str


@dataclass
class Manifest:
    created: str
    tradebot: str
    server: str
    timescaledb: str | None
    tables: list[TableDump] = field(default_factory=list)
    format: int = FORMAT

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2)

    @classmethod
    def load(cls, path: Path) -> Manifest:
        try:
            raw = json.loads((path / MANIFEST).read_text())
        except (OSError, ValueError) as error:
            raise BackupError(f"{path} is not a TradeBot backup: cannot read {MANIFEST} ({error})") from None
        if raw.get("format") != FORMAT:
            raise BackupError(
                f"{path}: backup format {raw.get('format')!r}; this TradeBot reads format {FORMAT}"
            )
        tables = [
            TableDump(**{**t, "columns": [Column(**c) for c in t["columns"]]}) for t in raw.pop("tables", [])
        ]
        return cls(**raw, tables=tables)

    @property
    def rows(self) -> int:
        return sum(t.rows for t in self.tables)


def _checked(name: str) -> str:
    if not NAME.match(name):
        raise BackupError(f"refusing table name {name!r}: not a plain lower-case identifier")
    return name


# --------------------------------------------------------------------------- backup

TABLES_SQL = """
SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p') AND NOT c.relispartition
ORDER BY c.relname
"""
COLUMNS_SQL = """
SELECT a.attname, format_type(a.atttypid, a.atttypmod), a.attnotnull, pg_get_expr(d.adbin, d.adrelid)
FROM pg_attribute a LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
WHERE a.attrelid = $1::regclass AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum
"""
PRIMARY_KEY_SQL = """
SELECT a.attname FROM pg_index i JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY(i.indkey)
WHERE i.indrelid = $1::regclass AND i.indisprimary ORDER BY array_position(i.indkey, a.attnum)
"""


async def _timescale_version(conn: asyncpg.Connection) -> str | None:
    version: str | None = await conn.fetchval(
        "SELECT extversion FROM pg_extension WHERE extname = 'timescaledb'"
    )
    return version


async def _describe(conn: asyncpg.Connection, table: str) -> tuple[list[Column], list[str]]:
    columns = [Column(r[0], r[1], r[2], r[3]) for r in await conn.fetch(COLUMNS_SQL, table)]
    return columns, [r[0] for r in await conn.fetch(PRIMARY_KEY_SQL, table)]


def _workdir(directory: Path, name: str) -> Path:
    """Where a backup is written until complete (then renamed to `name`)."""
    partial = directory / f".partial-{name}"
    (partial / "tables").mkdir(parents=True)
    return partial


async def backup(
    url: str, directory: Path, keep: int | None = None, progress: Progress | None = None
) -> tuple[Path, Manifest]:
    """Write a backup of the database at `url` under `directory`; keep the newest `keep` backups."""
    now = datetime.now(UTC)
    name = f"{PREFIX}{now.strftime('%Y%m%dT%H%M%S%fZ')}"
    partial = _workdir(directory, name)
    conn = await asyncpg.connect(url)
    try:
        manifest = Manifest(
            created=now.isoformat(),
            tradebot=__version__,
            server=str(await conn.fetchval("SHOW server_version")),
            timescaledb=await _timescale_version(conn),
        )
        async with conn.transaction(isolation="repeatable_read", readonly=True):
            for table in [_checked(r[0]) for r in await conn.fetch(TABLES_SQL)]:
                manifest.tables.append(await _dump_table(conn, table, partial, progress))
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise
    finally:
        await conn.close()
    (partial / MANIFEST).write_text(manifest.to_json())
    final = directory / name
    partial.rename(final)
    if keep is not None:
        prune(directory, keep)
    return final, manifest


async def _dump_table(
    conn: asyncpg.Connection, table: str, into: Path, progress: Progress | None
) -> TableDump:
    columns, key = await _describe(conn, table)
    total = int(await conn.fetchval(f"SELECT count(*) FROM {table}"))
    digest = hashlib.sha256()
    relative = f"tables/{table}.tsv.gz"
    names = ", ".join(f'"{c.name}"' for c in columns)
    done = 0
    with gzip.open(into / relative, "wb", compresslevel=6) as out:

        async def write(chunk: bytes) -> None:
            nonlocal done
            digest.update(chunk)
            out.write(chunk)
            done += chunk.count(b"\n")
            if progress is not None:
                progress(table, done, total)

        # SELECT, not COPY table: a hypertable's rows are in its chunks, not in the table itself.
        await conn.copy_from_query(f"SELECT {names} FROM {table}", output=write, format="text")
    if progress is not None:
        progress(table, total, total)
    return TableDump(table, columns, key, total, relative, digest.hexdigest())


def backups(directory: Path) -> list[Path]:
    """The complete backups in `directory`, oldest first."""
    if not directory.is_dir():
        return []
    return sorted(p for p in directory.iterdir() if p.name.startswith(PREFIX) and (p / MANIFEST).is_file())


def prune(directory: Path, keep: int) -> list[Path]:
    """Delete all but the newest `keep` complete backups (and leftovers of interrupted ones)."""
    if keep < 1:
        raise BackupError("keep at least one backup")
    doomed = backups(directory)[:-keep]
    doomed += [p for p in directory.iterdir() if p.name.startswith(".partial-")]
    for path in doomed:
        shutil.rmtree(path, ignore_errors=True)
    return doomed


def resolve(path: Path) -> Path:
    """A backup directory, or the newest backup in a directory of them."""
    if (path / MANIFEST).is_file():
        return path
    found = backups(path)
    if not found:
        raise BackupError(f"no TradeBot backup at {path} (a backup directory has a {MANIFEST})")
    return found[-1]


# --------------------------------------------------------------------------- restore


def _sources(manifest: Manifest) -> tuple[str, ...]:
    return tuple(s for s in DATA_SOURCES if tick_table(s) in {t.name for t in manifest.tables})


def _create_sql(table: TableDump) -> str:
    """A plain table from the manifest's columns, for a table the storage schema does not make."""
    columns = [
        f'"{c.name}" {c.type}' + (" NOT NULL" if c.not_null else "") + _default(c) for c in table.columns
    ]
    if table.primary_key:
        columns.append("PRIMARY KEY (" + ", ".join(f'"{k}"' for k in table.primary_key) + ")")
    return f"CREATE TABLE IF NOT EXISTS {_checked(table.name)} (" + ", ".join(columns) + ")"


def _default(column: Column) -> str:
    if not column.default:
        return ""
    if column.default.startswith("nextval("):  # a serial's sequence is not in the backup: an identity is
        return " GENERATED BY DEFAULT AS IDENTITY"
    return f" DEFAULT {column.default}"


async def _chunks(path: Path, digest: Any) -> AsyncIterator[bytes]:
    with gzip.open(path, "rb") as source:
        while chunk := source.read(CHUNK):
            digest.update(chunk)
            yield chunk


async def occupied(url: str, manifest: Manifest) -> dict[str, int]:
    """Tables of the backup that already hold rows in the target database."""
    conn = await asyncpg.connect(url)
    try:
        found = {}
        for table in manifest.tables:
            if await conn.fetchval("SELECT to_regclass($1)", _checked(table.name)):
                rows = int(
                    await conn.fetchval(f"SELECT count(*) FROM (SELECT 1 FROM {table.name} LIMIT 1) t")
                )
                if rows:
                    found[table.name] = rows
        return found
    finally:
        await conn.close()


async def restore(url: str, path: Path, replace: bool = False, progress: Progress | None = None) -> Manifest:
    """Load a backup into the database at `url`, in one transaction; refuses to mix with existing rows."""
    path = resolve(path)
    manifest = Manifest.load(path)
    busy = await occupied(url, manifest)
    if busy and not replace:
        listed = ", ".join(f"{t} ({n}+ rows)" for t, n in busy.items())
        raise BackupError(
            f"the database already holds data in {listed}: restore with --replace to empty them first"
        )
    conn = await asyncpg.connect(url)
    try:
        schema = await ensure_schema(conn, _sources(manifest))
        async with conn.transaction():
            for table in manifest.tables:
                await conn.execute(_create_sql(table))
            # A plain-PostgreSQL rollup table is a continuous aggregate (a view) on TimescaleDB: derived.
            tables = [t for t in manifest.tables if await _is_table(conn, t.name)]
            if replace:
                await conn.execute("TRUNCATE " + ", ".join(t.name for t in tables))
            for table in tables:
                await _load_table(conn, path, table, progress)
                await _reset_sequences(conn, table)
        if schema.timescale:  # the continuous aggregates over the restored ticks
            for source in _sources(manifest):
                await refresh_bars(conn, source)
    finally:
        await conn.close()
    return manifest


async def _is_table(conn: asyncpg.Connection, name: str) -> bool:
    kind = await conn.fetchval("SELECT relkind::text FROM pg_class WHERE oid = to_regclass($1)", name)
    return kind in ("r", "p")


async def _load_table(
    conn: asyncpg.Connection, path: Path, table: TableDump, progress: Progress | None
) -> None:
    have = {r[0] for r in await conn.fetch(COLUMNS_SQL, table.name)}
    missing = [c.name for c in table.columns if c.name not in have]
    if missing:
        raise BackupError(f"table {table.name} here lacks columns {', '.join(missing)} that the backup has")
    digest = hashlib.sha256()
    await conn.copy_to_table(
        table.name,
        source=_chunks(path / table.file, digest),
        columns=[c.name for c in table.columns],
        format="text",
    )
    if digest.hexdigest() != table.sha256:
        raise BackupError(
            f"{path / table.file} is damaged (checksum differs from the manifest): nothing restored"
        )
    loaded = int(await conn.fetchval(f"SELECT count(*) FROM {table.name}"))
    if loaded != table.rows:
        raise BackupError(f"{table.name}: {loaded} rows after the restore, the backup has {table.rows}")
    if progress is not None:
        progress(table.name, table.rows, table.rows)


async def _reset_sequences(conn: asyncpg.Connection, table: TableDump) -> None:
    for column in table.columns:
        sequence = await conn.fetchval("SELECT pg_get_serial_sequence($1, $2)", table.name, column.name)
        if sequence:
            await conn.execute(
                f'SELECT setval($1, COALESCE((SELECT max("{column.name}") FROM {table.name}), 0) + 1, false)',
                sequence,
            )
