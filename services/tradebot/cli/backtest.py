"""`tradebot backtest`: stored history (or an OHLCV file) through the live strategies and paper broker.

The same classes, broker, risk limits, exits and costs as the live services
(configured by the same environment), on a simulated clock; see tradebot.backtest.
Bad input — unknown strategy or parameter, an empty range, a symbol without data,
a malformed file — is a message naming it and exit status 2.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated, Any

import asyncpg
import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from tradebot.backtest.data import DataError, bars_as_ticks, read_csv, stored_bars, stored_ticks
from tradebot.backtest.run import Backtest, BacktestResult
from tradebot.common.models import PriceTick, validate_source_name
from tradebot.common.settings import Settings
from tradebot.common.symbols import normalise_symbol
from tradebot.execution.paper import PaperBroker
from tradebot.strategy.base import Strategy
from tradebot.strategy.registry import StrategyConfigError, build_strategies

console = Console(stderr=True)
out = Console()
REPLAYS = ("ticks", "bars", "provider-bars")
CHUNK = 20_000


def fail(message: str) -> typer.Exit:
    console.print(f"[bold red]{message}[/]", highlight=False)
    return typer.Exit(2)


def parse_time(option: str, text: str) -> datetime:
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise fail(f"{option} {text!r} is not an ISO 8601 time (e.g. 2026-01-05 or 2026-01-05T14:30:00Z)") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def parse_params(names: list[str], pairs: list[str], timeframe: str | None) -> dict[str, dict[str, Any]]:
    """`k=v` (or `strategy.k=v` with several strategies); values are JSON where they parse as JSON."""
    params: dict[str, dict[str, Any]] = {name: {} for name in names}
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        if not sep or not key:
            raise fail(f"--param {pair!r}: expected name=value")
        strategy, _, parameter = key.rpartition(".")
        if not strategy:
            if len(names) > 1:
                raise fail(f"--param {pair!r}: with several strategies write strategy.{key}={raw}")
            strategy = names[0]
        try:
            value = json.loads(raw)
        except json.JSONDecodeError:
            value = raw
        params.setdefault(strategy, {})[parameter] = value
    if timeframe:
        for name in names:
            params[name].setdefault("input", timeframe)
    return params


def configured(settings: Settings, strategy: str, pairs: list[str], timeframe: str | None) -> list[Strategy]:
    names = [n.strip() for n in strategy.split(",") if n.strip()]
    if not names:
        raise fail("--strategy names no strategy")
    try:
        return build_strategies(names, parse_params(names, pairs, timeframe))
    except StrategyConfigError as error:
        raise fail(str(error)) from None


def run(
    strategy: Annotated[str, typer.Option("--strategy", help="Strategy name (comma-separate several).")],
    param: Annotated[
        list[str] | None, typer.Option("--param", help="A parameter, name=value (repeatable).", show_default=False)
    ] = None,
    source: Annotated[str | None, typer.Option(help="Data source (default DATA_SOURCE).", show_default=False)] = None,
    symbols: Annotated[str | None, typer.Option(help="Symbols, comma-separated (default: all).")] = None,
    start: Annotated[str | None, typer.Option(help="Start time, ISO 8601 (inclusive).", show_default=False)] = None,
    end: Annotated[str | None, typer.Option(help="End time, ISO 8601 (exclusive).", show_default=False)] = None,
    timeframe: Annotated[
        str | None, typer.Option(help="Bars the strategy evaluates (its `input`): 1m, 5m, 15m, 1h.")
    ] = None,
    replay: Annotated[str, typer.Option(help="What history to replay: ticks, bars, provider-bars.")] = "ticks",
    data: Annotated[Path | None, typer.Option(help="An OHLCV CSV file instead of the database.")] = None,
    cash: Annotated[float | None, typer.Option(help="Starting cash (default STARTING_CASH).")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the result as one JSON object.")] = False,
    report: Annotated[Path | None, typer.Option(help="Write index.html, trades.csv, equity.csv here.")] = None,
) -> None:
    """Backtest strategies on stored history with the live broker, risk limits, exits and costs."""
    from tradebot.cli.main import settings_or_exit

    settings = settings_or_exit()
    strategies = configured(settings, strategy, param or [], timeframe)
    if replay not in REPLAYS:
        raise fail(f"--replay {replay!r}: choose one of {', '.join(REPLAYS)}")
    try:
        chosen = [normalise_symbol(s) for s in symbols.split(",") if s.strip()] if symbols else None
        source_name = validate_source_name(source or settings.data_source)
    except ValueError as error:
        raise fail(str(error)) from None
    starting_cash = cash if cash is not None else settings.starting_cash
    if starting_cash <= 0:
        raise fail(f"--cash {starting_cash:g}: must be above 0")
    broker = PaperBroker.from_settings(settings)
    try:
        if data is not None:
            result, prices = _from_file(data, chosen, strategies, broker, starting_cash, start, end, settings)
        else:
            if start is None or end is None:
                raise fail("--start and --end are needed (or --data FILE)")
            begin, finish = parse_time("--start", start), parse_time("--end", end)
            if finish <= begin:
                raise fail(f"empty range: --end {end} is not after --start {start}")
            result, prices = asyncio.run(
                _from_database(settings, source_name, chosen, replay, strategies, broker, starting_cash, begin, finish)
            )
    except DataError as error:
        raise fail(str(error)) from None
    summary = result.summary()
    if report is not None:
        from tradebot.backtest.report import write_report

        page = write_report(result, report, prices)
        console.print(f"report: {page}", highlight=False)
    if as_json:
        out.print_json(json.dumps(summary))
    else:
        _print(summary)


def _print(summary: dict[str, Any]) -> None:
    table = Table("", "", title=f"Backtest {summary['strategy']}", show_header=False, title_justify="left")
    for key, value in summary.items():
        if key != "params":
            table.add_row(key, str(value))
    out.print(table)


def _from_file(
    path: Path,
    symbols: list[str] | None,
    strategies: list[Strategy],
    broker: PaperBroker,
    cash: float,
    start: str | None,
    end: str | None,
    settings: Settings,
) -> tuple[BacktestResult, dict[str, list[tuple[float, float]]]]:
    bars = read_csv(path, symbols[0] if symbols and len(symbols) == 1 else None)
    begin = parse_time("--start", start) if start else bars[0].start
    finish = parse_time("--end", end) if end else bars[-1].start + timedelta(minutes=1)
    bars = [b for b in bars if begin <= b.start < finish and (not symbols or b.symbol in symbols)]
    if not bars:
        raise DataError(f"--data {path}: no bars in [{begin.isoformat()}, {finish.isoformat()})")
    backtest = Backtest(strategies, broker, cash, begin, finish, settings.bar_close_grace)
    prices: dict[str, list[tuple[float, float]]] = {}
    for bar in bars:
        prices.setdefault(bar.symbol, []).append((bar.start.timestamp(), bar.close))
    backtest.feed(bars_as_ticks(bars, "csv"))
    return backtest.finish(), prices


async def _from_database(
    settings: Settings,
    source: str,
    symbols: list[str] | None,
    replay: str,
    strategies: list[Strategy],
    broker: PaperBroker,
    cash: float,
    start: datetime,
    end: datetime,
) -> tuple[BacktestResult, dict[str, list[tuple[float, float]]]]:
    try:
        conn = await asyncpg.connect(settings.database_url)
    except (OSError, asyncpg.PostgresError) as error:
        raise DataError(f"cannot reach DATABASE_URL: {error}") from None
    try:
        await _check_data(conn, source, symbols, replay, start, end)
        backtest = Backtest(strategies, broker, cash, start, end, settings.bar_close_grace)
        prices: dict[str, list[tuple[float, float]]] = {}
        total = (end - start).total_seconds()
        columns = (TextColumn("[bold]backtest"), BarColumn(), TextColumn("{task.fields[events]:,} events"),
                   TimeRemainingColumn())  # fmt: skip
        with Progress(*columns, console=console, transient=True) as progress:
            task = progress.add_task("replay", total=total, events=0)
            async for chunk in _chunks(_history(conn, source, symbols, replay, start, end)):
                backtest.feed(chunk)
                _sample_prices(prices, chunk)
                progress.update(task, completed=(chunk[-1].time - start).total_seconds(), events=backtest.result.events)
        result = backtest.finish()
        from tradebot.backtest.store import save_backtest

        await save_backtest(conn, result, source)
        return result, prices
    finally:
        await conn.close()


def _history(conn, source, symbols, replay, start, end) -> AsyncIterator[PriceTick]:
    if replay == "ticks":
        return stored_ticks(conn, source, symbols, start, end)

    async def from_bars() -> AsyncIterator[PriceTick]:
        async for bar in stored_bars(conn, source, symbols, start, end, provider=replay == "provider-bars"):
            for tick in bars_as_ticks([bar], source):
                yield tick

    return from_bars()


async def _chunks(ticks: AsyncIterator[PriceTick]) -> AsyncIterator[list[PriceTick]]:
    chunk: list[PriceTick] = []
    async for tick in ticks:
        chunk.append(tick)
        if len(chunk) >= CHUNK:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def _sample_prices(prices: dict[str, list[tuple[float, float]]], ticks: list[PriceTick]) -> None:
    """Each symbol's price once a minute, for the report's charts."""
    for tick in ticks:
        if tick.type != "trade":
            continue
        series = prices.setdefault(tick.symbol, [])
        moment = tick.time.timestamp()
        if not series or moment - series[-1][0] >= 60:
            series.append((moment, tick.price))


async def _check_data(conn, source: str, symbols: list[str] | None, replay: str, start, end) -> None:
    """Refuse an unknown source, or a symbol without data in the range, before replaying anything."""
    from tradebot.backfill.store import provider_bar_table
    from tradebot.common.tables import bar_table, tick_table

    table, column = {
        "ticks": (tick_table(source), "time"),
        "bars": (bar_table(source), "bucket"),
        "provider-bars": (provider_bar_table(source), "bucket"),
    }[replay]
    if not await conn.fetchval("SELECT to_regclass($1) IS NOT NULL", table):
        raise DataError(f"source {source!r} has no {replay} table ({table})")
    found = {
        row["symbol"]
        for row in await conn.fetch(
            f"SELECT DISTINCT symbol FROM {table} WHERE {column} >= $1 AND {column} < $2"
            " AND ($3::text[] IS NULL OR symbol = ANY($3))",
            start, end, symbols,
        )  # fmt: skip
    }
    missing = sorted(set(symbols or []) - found) if symbols else ([] if found else ["any symbol"])
    if missing:
        raise DataError(
            f"no {replay} for {', '.join(missing)} in {source} between {start.isoformat()} and {end.isoformat()}"
        )
