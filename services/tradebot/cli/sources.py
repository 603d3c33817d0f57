"""`tradebot sources`: the original's manage_data_sources.py — the per-source tick tables.

Table names are only ever built from validated source names (tradebot.common.tables).
Destructive actions ask first; `--yes` answers for scripts.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Annotated, Any, cast

import asyncpg
import typer
from rich.table import Table

from tradebot.backfill.store import CHECKPOINTS_TABLE, provider_bar_table
from tradebot.cli.common import fail, out, settings_or_exit
from tradebot.common.models import validate_source_name
from tradebot.common.symbols import normalise_symbol
from tradebot.common.tables import TICK_TABLE_PREFIX, bar_table, tick_table

app = typer.Typer(
    help="Manage the **data sources**: one `price_ticks_<source>` table each.", no_args_is_help=True
)

SourceOption = Annotated[str, typer.Option("--source", help="The source name, e.g. synthetic or alpaca.")]
TargetOption = Annotated[str, typer.Option("--target", help="The other source.")]
SymbolOption = Annotated[str | None, typer.Option("--symbol", help="Only this symbol.", show_default=False)]
YesOption = Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")]


def checked_source(name: str, option: str = "--source") -> str:
    try:
        return validate_source_name(name)
    except ValueError as error:
        raise fail(f"{option}: {error}") from None


def checked_symbol(symbol: str | None) -> str | None:
    try:
        return normalise_symbol(symbol) if symbol else None
    except ValueError as error:
        raise fail(f"--symbol: {error}") from None


def with_database(work: Callable[[asyncpg.Connection], Awaitable[Any]]) -> Any:
    settings = settings_or_exit()

    async def main() -> Any:
        try:
            conn = await asyncpg.connect(settings.database_url)
        except (OSError, asyncpg.PostgresError) as error:
            raise fail(f"cannot reach the database (DATABASE_URL): {error}", 1) from None
        try:
            return await work(conn)
        finally:
            await conn.close()

    return asyncio.run(main())


async def table_kinds(conn: asyncpg.Connection) -> dict[str, str]:
    """Every table or view in the search path -> its kind ('r' table, 'v'/'m' view, ...)."""
    rows = await conn.fetch(
        "SELECT c.relname, c.relkind::text AS relkind FROM pg_class c"
        " JOIN pg_namespace n ON n.oid = c.relnamespace"
        " WHERE n.nspname = ANY(current_schemas(false)) AND c.relkind IN ('r', 'p', 'v', 'm')"
    )
    return {row["relname"]: row["relkind"] for row in rows}


async def known_sources(conn: asyncpg.Connection) -> list[str]:
    sources = []
    for name in sorted(await table_kinds(conn)):
        if name.startswith(TICK_TABLE_PREFIX):
            try:
                sources.append(validate_source_name(name.removeprefix(TICK_TABLE_PREFIX)))
            except ValueError:
                continue
    return sources


async def require_source(conn: asyncpg.Connection, source: str) -> None:
    if source not in await known_sources(conn):
        raise fail(
            f"no data source {source!r} (no table {tick_table(source)}); see `tradebot sources list`", 1
        )


def symbol_filter(symbol: str | None, first_parameter: int = 1) -> tuple[str, list]:
    return (f" WHERE symbol = ${first_parameter}", [symbol]) if symbol else ("", [])


@app.command("list")
def list_sources() -> None:
    """Every source with its rows, symbols and time span."""

    async def work(conn: asyncpg.Connection) -> None:
        kinds = await table_kinds(conn)
        table = Table(title="Data sources")
        for header in ("source", "ticks", "symbols", "first", "last", "1m bars", "provider bars"):
            table.add_column(header, justify="left" if header in ("source", "first", "last") else "right")
        for source in await known_sources(conn):
            stats = cast(
                asyncpg.Record,
                await conn.fetchrow(
                    f"SELECT count(*) AS n, count(DISTINCT symbol) AS s, min(time) AS a, max(time) AS b"
                    f" FROM {tick_table(source)}"
                ),
            )
            bars = (
                await conn.fetchval(f"SELECT count(*) FROM {bar_table(source)}")
                if bar_table(source) in kinds
                else 0
            )
            history = provider_bar_table(source)
            provider = await conn.fetchval(f"SELECT count(*) FROM {history}") if history in kinds else 0
            table.add_row(
                source,
                f"{stats['n']:,}",
                str(stats["s"]),
                _when(stats["a"]),
                _when(stats["b"]),
                f"{bars:,}",
                f"{provider:,}",
            )
        out.print(table)

    with_database(work)


def _when(moment) -> str:
    return moment.strftime("%Y-%m-%d %H:%M:%S") if moment else "—"


@app.command()
def create(source: SourceOption) -> None:
    """Create a source's tables (ticks and 1-minute bars); harmless if they exist."""
    from tradebot.storage.schema import ensure_schema

    name = checked_source(source)

    async def work(conn: asyncpg.Connection) -> None:
        existed = name in await known_sources(conn)
        await ensure_schema(conn, (name,))
        verb = "already existed" if existed else "created"
        out.print(f"{tick_table(name)} and {bar_table(name)} {verb}.")

    with_database(work)


@app.command()
def clean(source: SourceOption, symbol: SymbolOption = None, yes: YesOption = False) -> None:
    """Delete a source's stored ticks, bars and backfill checkpoints (optionally one symbol's)."""
    name, only = checked_source(source), checked_symbol(symbol)

    async def work(conn: asyncpg.Connection) -> None:
        await require_source(conn, name)
        where, args = symbol_filter(only)
        count = await conn.fetchval(f"SELECT count(*) FROM {tick_table(name)}{where}", *args)
        scope = f"{only} in {name!r}" if only else f"every symbol in {name!r}"
        if not yes and not typer.confirm(f"Delete {count:,} ticks and the bars of {scope}?", default=False):
            raise fail("nothing deleted", 1)
        kinds = await table_kinds(conn)
        async with conn.transaction():
            deleted = {}
            for table in (tick_table(name), bar_table(name), provider_bar_table(name)):
                if kinds.get(table) in ("r", "p"):  # a TimescaleDB continuous aggregate follows its ticks
                    status = await conn.execute(f"DELETE FROM {table}{where}", *args)
                    deleted[table] = int(status.split()[-1])
            if CHECKPOINTS_TABLE in kinds:
                where_cp, args_cp = symbol_filter(only, 2)
                await conn.execute(
                    f"DELETE FROM {CHECKPOINTS_TABLE} WHERE source = $1{where_cp.replace('WHERE', 'AND')}",
                    name,
                    *args_cp,
                )
        out.print("Deleted " + ", ".join(f"{n:,} rows from {t}" for t, n in deleted.items()))

    with_database(work)


@app.command()
def migrate(
    source: SourceOption, target: TargetOption, symbol: SymbolOption = None, yes: YesOption = False
) -> None:
    """Copy ticks from one source to another (target bars follow); rows already there are kept once."""
    from tradebot.storage.schema import ensure_schema
    from tradebot.storage.writer import tick_spec

    name, other, only = checked_source(source), checked_source(target, "--target"), checked_symbol(symbol)
    if name == other:
        raise fail("--source and --target are the same source")

    async def work(conn: asyncpg.Connection) -> None:
        await require_source(conn, name)
        where, args = symbol_filter(only)
        count = await conn.fetchval(f"SELECT count(*) FROM {tick_table(name)}{where}", *args)
        what = f"{count:,} ticks{f' of {only}' if only else ''}"
        if not yes and not typer.confirm(f"Copy {what} from {name!r} to {other!r}?", default=False):
            raise fail("nothing copied", 1)
        schema = await ensure_schema(conn, (other,))
        rows = (
            f"(SELECT time, symbol, price, size, bid, ask, volume, id FROM {tick_table(name)}{where}) AS src"
        )
        before = await conn.fetchval(f"SELECT count(*) FROM {tick_table(other)}")
        async with conn.transaction():
            await conn.execute(tick_spec(other, schema.timescale).insert.format(stage=rows), *args)
        after = await conn.fetchval(f"SELECT count(*) FROM {tick_table(other)}")
        added = after - before
        out.print(
            f"Copied {added:,} new ticks into {tick_table(other)} ({count - added:,} were there already)."
        )

    with_database(work)


@app.command()
def compare(source: SourceOption, target: TargetOption, symbol: SymbolOption = None) -> None:
    """Per symbol: ticks in each source, time spans, and ticks only one of them has."""
    name, other, only = checked_source(source), checked_source(target, "--target"), checked_symbol(symbol)

    async def work(conn: asyncpg.Connection) -> None:
        await require_source(conn, name)
        await require_source(conn, other)
        where, args = symbol_filter(only)
        rows = await conn.fetch(
            f"""
            WITH a AS (SELECT symbol, time, id FROM {tick_table(name)}{where}),
                 b AS (SELECT symbol, time, id FROM {tick_table(other)}{where}),
                 l AS (SELECT symbol, count(*) n, min(time) f, max(time) t FROM a GROUP BY symbol),
                 r AS (SELECT symbol, count(*) n, min(time) f, max(time) t FROM b GROUP BY symbol),
                 ol AS (SELECT symbol, count(*) n FROM (SELECT * FROM a EXCEPT SELECT * FROM b) d GROUP BY 1),
                 orr AS (SELECT symbol, count(*) n FROM (SELECT * FROM b EXCEPT SELECT * FROM a) d GROUP BY 1)
            SELECT s.symbol, coalesce(l.n, 0) ln, coalesce(r.n, 0) rn, coalesce(ol.n, 0) only_l,
                   coalesce(orr.n, 0) only_r, least(l.f, r.f) AS first, greatest(l.t, r.t) AS last
            FROM (SELECT symbol FROM l UNION SELECT symbol FROM r) s
            LEFT JOIN l USING (symbol) LEFT JOIN r USING (symbol)
            LEFT JOIN ol USING (symbol) LEFT JOIN orr USING (symbol) ORDER BY 1
            """,
            *args,
        )
        table = Table(title=f"{name} vs {other}")
        for header in ("symbol", name, other, f"only in {name}", f"only in {other}", "first", "last"):
            table.add_column(header, justify="left" if header in ("symbol", "first", "last") else "right")
        for row in rows:
            table.add_row(
                row["symbol"],
                f"{row['ln']:,}",
                f"{row['rn']:,}",
                f"{row['only_l']:,}",
                f"{row['only_r']:,}",
                _when(row["first"]),
                _when(row["last"]),
            )
        out.print(table)
        if not rows:
            out.print("Neither source has ticks" + (f" for {only}." if only else "."))

    with_database(work)
