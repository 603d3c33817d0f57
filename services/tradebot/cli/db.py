"""`tradebot db backup | restore | list`: logical backups of DATABASE_URL (tradebot.storage.backup).

The CronJob of a stack with spec.backup runs `tradebot db backup` too: one code path.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from pathlib import Path
from typing import Annotated, Any, TypeVar

import asyncpg
import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn, TimeElapsedColumn
from rich.table import Table

from tradebot.cli.common import console, fail, out, settings_or_exit
from tradebot.storage import backup as backups

app = typer.Typer(help="**Back up and restore** the database (DATABASE_URL).", no_args_is_help=True)

DirOption = Annotated[Path, typer.Option("--dir", help="Where backups are kept (one directory each).")]


def _database_url() -> str:
    return settings_or_exit().database_url


def _progress() -> Progress:
    return Progress(
        TextColumn("{task.description:<28}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
    )


T = TypeVar("T")


def _run(action: str, work: Coroutine[Any, Any, T]) -> T:
    """Run one coroutine; a refusal or an unreachable database is a message and exit status 1."""
    try:
        return asyncio.run(work)
    except backups.BackupError as error:
        raise fail(f"{action} failed: {error}", code=1) from None
    except (OSError, asyncpg.PostgresError) as error:
        raise fail(f"{action} failed: {type(error).__name__}: {error}", code=1) from None


def _tracker(progress: Progress) -> backups.Progress:
    tasks: dict[str, TaskID] = {}

    def update(table: str, done: int, total: int) -> None:
        if table not in tasks:
            tasks[table] = progress.add_task(table, total=max(total, 1))
        progress.update(tasks[table], completed=done if total else 1)

    return update


@app.command()
def backup(
    directory: DirOption = Path("backups"),
    keep: Annotated[
        int | None, typer.Option("--keep", min=1, help="Then delete all but the newest N backups.")
    ] = None,
) -> None:
    """Write a consistent backup of every table into a new directory under `--dir`."""
    url = _database_url()
    with _progress() as progress:
        path, manifest = _run("backup", backups.backup(url, directory, keep, _tracker(progress)))
    out.print(f"{path}  {len(manifest.tables)} tables, {manifest.rows} rows", highlight=False)


@app.command()
def restore(
    path: Annotated[
        Path, typer.Argument(help="A backup directory, or a --dir of them (the newest is taken).")
    ],
    replace: Annotated[bool, typer.Option("--replace", help="Empty the backup's tables here first.")] = False,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask before --replace.")] = False,
) -> None:
    """Load a backup into DATABASE_URL (one transaction: all of it or nothing)."""
    url = _database_url()
    try:
        chosen = backups.resolve(path)
        manifest = backups.Manifest.load(chosen)
    except backups.BackupError as error:
        raise fail(f"restore failed: {error}", code=1) from None
    if replace and not yes:
        typer.confirm(f"Empty {len(manifest.tables)} tables and load {chosen.name}?", abort=True)
    with _progress() as progress:
        _run("restore", backups.restore(url, chosen, replace, _tracker(progress)))
    out.print(f"restored {chosen.name}: {len(manifest.tables)} tables, {manifest.rows} rows", highlight=False)


@app.command("list")
def list_backups(directory: DirOption = Path("backups")) -> None:
    """The complete backups under `--dir`, newest last."""
    table = Table("backup", "created", "tables", "rows", "server", "timescaledb")
    for path in backups.backups(directory):
        manifest = backups.Manifest.load(path)
        table.add_row(
            path.name, manifest.created, str(len(manifest.tables)), str(manifest.rows), manifest.server,
            manifest.timescaledb or "-",
        )  # fmt: skip
    out.print(table)
