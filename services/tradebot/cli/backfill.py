"""`tradebot backfill` and `tradebot backfill benchmark`."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Annotated

import typer
from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn, TimeRemainingColumn
from rich.table import Table

from tradebot.cli.common import console, fail, out, settings_or_exit
from tradebot.common.settings import Settings
from tradebot.common.symbols import configured_symbols, normalise_symbol
from tradebot.providers.history import KINDS, Kind, credentials_problem
from tradebot.providers.http import ProviderAuthError, ProviderError
from tradebot.providers.registry import history_sources

app = typer.Typer(
    help="Fetch **historical** bars and trades from Alpaca or Polygon REST into the database.",
    rich_markup_mode="markdown",
)

SourceOption = Annotated[
    str | None, typer.Option("--source", help="alpaca or polygon (default: DATA_SOURCE).", show_default=False)
]
DaysOption = Annotated[float, typer.Option("--days", min=0.001, help="Range length, ending at --end.")]
StartOption = Annotated[
    datetime | None, typer.Option("--start", help="Range start (UTC); overrides --days.", show_default=False)
]
EndOption = Annotated[datetime | None, typer.Option("--end", help="Range end (UTC), default now.")]
SymbolsOption = Annotated[
    str | None,
    typer.Option("--symbols", help="Comma-separated; default: SYMBOL_MODE's symbols.", show_default=False),
]
KindsOption = Annotated[list[str] | None, typer.Option("--kind", help="bars and/or trades (repeatable).")]


def resolve_source(source: str | None, settings: Settings) -> str:
    chosen = source or settings.data_source
    if chosen not in history_sources():
        named = f"--source is {source!r}" if source else f"DATA_SOURCE is {settings.data_source!r}"
        raise fail(f"backfill needs --source {' or '.join(history_sources())} ({named})")
    problem = credentials_problem(chosen, settings)
    if problem:
        raise fail(problem)
    return chosen


def resolve_range(days: float, start: datetime | None, end: datetime | None) -> tuple[datetime, datetime]:
    stop = (end or datetime.now(UTC)).replace(second=0, microsecond=0)
    stop = stop if stop.tzinfo else stop.replace(tzinfo=UTC)
    begin = start.replace(tzinfo=start.tzinfo or UTC) if start else stop - timedelta(days=days)
    if begin >= stop:
        raise fail(
            f"the range is empty: --start {begin:%Y-%m-%d %H:%M} is not before --end {stop:%Y-%m-%d %H:%M}"
        )
    return begin, stop


def resolve_symbols(symbols: str | None, settings: Settings) -> list[str]:
    if symbols:
        try:
            return list(dict.fromkeys(normalise_symbol(s) for s in symbols.split(",") if s.strip()))
        except ValueError as error:
            raise fail(f"--symbols: {error}") from None
    return configured_symbols(settings)


def resolve_kinds(kinds: list[str] | None) -> list[Kind]:
    chosen = kinds or list(KINDS)
    unknown = [k for k in chosen if k not in KINDS]
    if unknown:
        raise fail(f"--kind {unknown[0]!r} is not one of: {', '.join(KINDS)}")
    return [k for k in KINDS if k in chosen]


@app.callback(invoke_without_command=True)
def backfill(
    ctx: typer.Context,
    source: SourceOption = None,
    days: DaysOption = 1.0,
    start: StartOption = None,
    end: EndOption = None,
    symbols: SymbolsOption = None,
    kind: KindsOption = None,
    restart: Annotated[
        bool, typer.Option("--restart", help="Ignore checkpoints; fetch the whole range.")
    ] = False,
) -> None:
    """Fetch history for the configured symbols and range, **resuming** where the last run stopped.

    Pacing comes from BACKFILL_BATCH_SIZE (symbols per batch), BACKFILL_CONCURRENT_REQUESTS and
    RATE_LIMIT_DELAY (seconds each request slot rests). 429 answers are retried after the provider's
    Retry-After / X-RateLimit-Reset. Writes are COPY + ON CONFLICT: running it twice stores nothing twice.
    """
    if ctx.invoked_subcommand:
        return
    settings = settings_or_exit()
    chosen = resolve_source(source, settings)
    begin, stop = resolve_range(days, start, end)
    names, kinds = resolve_symbols(symbols, settings), resolve_kinds(kind)
    console.print(
        f"Backfilling {', '.join(kinds)} of {len(names)} symbols from {chosen}, "
        f"{begin:%Y-%m-%d %H:%M} → {stop:%Y-%m-%d %H:%M} UTC "
        f"(batch {settings.backfill_batch_size}, {settings.backfill_concurrent_requests} concurrent, "
        f"delay {settings.rate_limit_delay:g}s)",
        highlight=False,
    )
    try:
        result = asyncio.run(_run(settings, chosen, names, kinds, begin, stop, not restart))
    except ProviderAuthError as error:
        raise fail(str(error), 1) from None
    except ProviderError as error:
        raise fail(f"backfill stopped: {error}; run it again to resume", 1) from None
    except OSError as error:
        raise fail(f"cannot reach the database (DATABASE_URL): {error}", 1) from None
    stats = result.stats
    out.print(
        f"Done: {result.rows:,} rows in {result.pages:,} pages, {result.rows_per_second:,.0f} rows/s; "
        f"{stats.get('requests', 0)} requests, {stats.get('retries', 0)} retries "
        f"({stats.get('rate_limited', 0)} rate-limited); {result.skipped}/{result.units} already complete.",
        highlight=False,
    )


async def _run(settings: Settings, source: str, symbols, kinds, start, end, resume: bool):
    import asyncpg

    from tradebot.backfill.runner import Backfill, total_seconds
    from tradebot.backfill.store import HistoryStore
    from tradebot.providers.history import history_source
    from tradebot.providers.ratelimit import Pacer

    conn = await asyncpg.connect(
        settings.database_url, server_settings={"application_name": "tradebot-backfill"}
    )
    history = history_source(
        source, settings, Pacer(settings.backfill_concurrent_requests, settings.rate_limit_delay)
    )
    columns = (
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        TaskProgressColumn(),
        TextColumn("{task.fields[rows]:>10,} rows"),
        TextColumn("{task.fields[rate]:>8,.0f} rows/s"),
        TextColumn("ETA"),
        TimeRemainingColumn(),
    )
    try:
        store = HistoryStore(conn, source)
        await store.setup()
        with Progress(*columns, console=console, transient=False) as progress:
            task = progress.add_task(
                source, total=total_seconds(symbols, kinds, start, end), rows=0, rate=0.0
            )
            began = asyncio.get_running_loop().time()
            rows_seen = 0

            def advance(covered: float, rows: int) -> None:
                nonlocal rows_seen
                rows_seen += rows
                elapsed = max(1e-6, asyncio.get_running_loop().time() - began)
                progress.update(task, advance=covered, rows=rows_seen, rate=rows_seen / elapsed)

            result = await Backfill(history, store, advance).run(
                symbols, kinds, start, end, settings.backfill_batch_size, resume=resume
            )
        await store.finish()
        return result
    finally:
        await history.http.aclose()
        await conn.close()


@app.command()
def benchmark(
    source: SourceOption = None,
    days: DaysOption = 1.0,
    start: StartOption = None,
    end: EndOption = None,
    symbols: SymbolsOption = None,
    kind: KindsOption = None,
) -> None:
    """Compare the original's four pacing configurations on the same symbols and range.

    conservative 10/3/0.5, balanced 15/6/0.3, aggressive 20/8/0.2, high performance 25/10/0.15
    (batch size / concurrent requests / rate-limit delay). Fetches without storing.
    """
    from tradebot.backfill.benchmark import CONFIGS, run_config

    settings = settings_or_exit()
    chosen = resolve_source(source, settings)
    begin, stop = resolve_range(days, start, end)
    names, kinds = resolve_symbols(symbols, settings), resolve_kinds(kind)
    span = f"{begin:%Y-%m-%d %H:%M} → {stop:%Y-%m-%d %H:%M} UTC"
    table = Table(title=f"Backfill pacing on {chosen}: {len(names)} symbols, {' + '.join(kinds)}, {span}")
    for header in ("configuration", "batch", "concurrent", "delay s", "rows", "requests", "retries", "429s",
                   "seconds", "rows/s", "req/s"):  # fmt: skip
        table.add_column(header, justify="left" if header == "configuration" else "right")
    for config in CONFIGS:
        console.print(f"running {config.name} …", highlight=False)
        try:
            result = asyncio.run(run_config(config, settings, chosen, names, kinds, begin, stop))
        except ProviderError as error:
            raise fail(str(error), 1) from None
        stats = result.stats
        table.add_row(
            config.name,
            str(config.batch_size),
            str(config.concurrent_requests),
            f"{config.rate_limit_delay:g}",
            f"{result.rows:,}",
            str(stats.get("requests", 0)),
            str(stats.get("retries", 0)),
            str(stats.get("rate_limited", 0)),
            f"{result.elapsed:.2f}",
            f"{result.rows_per_second:,.0f}",
            f"{stats.get('requests', 0) / max(result.elapsed, 1e-9):.1f}",
        )
    out.print(table)
