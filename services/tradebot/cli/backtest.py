"""`tradebot backtest`: stored history (or an OHLCV file) through the live strategies and paper broker.

The same classes, broker, risk limits, exits and costs as the live services
(configured by the same environment), on a simulated clock; see tradebot.backtest.
Bad input — unknown strategy or parameter, an empty range, a symbol without data,
a malformed file — is a message naming it and exit status 2.
"""

from __future__ import annotations

import asyncio
import json
import multiprocessing
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated, Any

import asyncpg
import typer
from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from tradebot.backtest.data import DataError, bars_as_ticks, read_csv, stored_bars, stored_ticks
from tradebot.backtest.run import Backtest, BacktestResult
from tradebot.backtest.sweep import RANKABLE, combinations, parse_grid, ranked
from tradebot.cli.common import console, fail, out, settings_or_exit
from tradebot.common.models import PriceTick, validate_source_name
from tradebot.common.settings import Settings
from tradebot.common.symbols import normalise_symbol
from tradebot.execution.paper import PaperBroker
from tradebot.strategy.base import Strategy
from tradebot.strategy.registry import StrategyConfigError, build_strategies

REPLAYS = ("ticks", "bars", "provider-bars")
CHUNK = 20_000
Tag = tuple[str | None, int | None]  # (run, run_index) of the stored row
RUN_HELP = "Tag the stored run with this id (a Kubernetes Backtest's namespace/name/uid)."


def parse_time(option: str, text: str) -> datetime:
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise fail(
            f"{option} {text!r} is not an ISO 8601 time (e.g. 2026-01-05 or 2026-01-05T14:30:00Z)"
        ) from None
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


app = typer.Typer(
    help="**Backtest** strategies on stored history (or a file) with the live broker; `sweep` tunes them.",
    invoke_without_command=True,
    no_args_is_help=False,
)


@dataclass(frozen=True)
class History:
    """Where a run's ticks come from: the database (source, replay kind) or an OHLCV file."""

    source: str
    symbols: list[str] | None
    replay: str
    data: Path | None
    start: datetime | None
    end: datetime | None


def history_of(settings: Settings, source, symbols, replay, data, start, end) -> History:
    if replay not in REPLAYS:
        raise fail(f"--replay {replay!r}: choose one of {', '.join(REPLAYS)}")
    try:
        chosen = [normalise_symbol(s) for s in symbols.split(",") if s.strip()] if symbols else None
        source_name = validate_source_name(source or settings.data_source)
    except ValueError as error:
        raise fail(str(error)) from None
    begin = parse_time("--start", start) if start else None
    finish = parse_time("--end", end) if end else None
    if data is None and (begin is None or finish is None):
        raise fail("--start and --end are needed (or --data FILE)")
    if begin is not None and finish is not None and finish <= begin:
        raise fail(f"empty range: --end {end} is not after --start {start}")
    return History(source_name, chosen, replay, data, begin, finish)


def replay_history(
    settings: Settings,
    history: History,
    strategies: list[Strategy],
    cash: float,
    start: datetime | None = None,
    end: datetime | None = None,
    store: bool = True,
    progress: bool = True,
    tag: Tag = (None, None),
) -> tuple[BacktestResult, dict[str, list[tuple[float, float]]]]:
    """One run over `history` (optionally a sub-range of it); DataError says what is wrong.

    `tag` (run, index) marks the stored row as part of someone's run (a Backtest resource's).
    """
    broker = PaperBroker.from_settings(settings)
    begin, finish = start or history.start, end or history.end
    if history.data is not None:
        return _from_file(history.data, history.symbols, strategies, broker, cash, begin, finish, settings)
    assert begin is not None and finish is not None
    return asyncio.run(
        _from_database(settings, history, strategies, broker, cash, begin, finish, store, progress, tag)
    )


@app.callback()
def run(
    ctx: typer.Context,
    strategy: Annotated[
        str | None,
        typer.Option("--strategy", help="Strategy name (comma-separate several).", show_default=False),
    ] = None,
    param: Annotated[
        list[str] | None,
        typer.Option("--param", help="A parameter, name=value (repeatable).", show_default=False),
    ] = None,
    source: Annotated[
        str | None, typer.Option(help="Data source (default DATA_SOURCE).", show_default=False)
    ] = None,
    symbols: Annotated[str | None, typer.Option(help="Symbols, comma-separated (default: all).")] = None,
    start: Annotated[
        str | None, typer.Option(help="Start time, ISO 8601 (inclusive).", show_default=False)
    ] = None,
    end: Annotated[
        str | None, typer.Option(help="End time, ISO 8601 (exclusive).", show_default=False)
    ] = None,
    timeframe: Annotated[
        str | None, typer.Option(help="Bars the strategy evaluates (its `input`): 1m, 5m, 15m, 1h.")
    ] = None,
    replay: Annotated[
        str, typer.Option(help="What history to replay: ticks, bars, provider-bars.")
    ] = "ticks",
    data: Annotated[Path | None, typer.Option(help="An OHLCV CSV file instead of the database.")] = None,
    cash: Annotated[float | None, typer.Option(help="Starting cash (default STARTING_CASH).")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the result as one JSON object.")] = False,
    report: Annotated[
        Path | None, typer.Option(help="Write index.html, trades.csv, equity.csv here.")
    ] = None,
    run_id: Annotated[str | None, typer.Option("--run", help=RUN_HELP, show_default=False)] = None,
) -> None:
    """Backtest strategies on stored history with the live broker, risk limits, exits and costs.

    The same strategy classes, paper broker, risk limits, exits and costs as the live services
    (configured by the same environment), on a simulated clock; orders fill at the next trade.
    """
    if ctx.invoked_subcommand is not None:
        return
    if not strategy:
        raise fail("--strategy is needed (see `tradebot strategies list`)")
    settings = settings_or_exit()
    strategies = configured(settings, strategy, param or [], timeframe)
    history = history_of(settings, source, symbols, replay, data, start, end)
    starting_cash = checked_cash(settings, cash)
    try:
        result, prices = replay_history(
            settings, history, strategies, starting_cash, tag=(run_id, 0 if run_id else None)
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


def checked_cash(settings: Settings, cash: float | None) -> float:
    starting_cash = cash if cash is not None else settings.starting_cash
    if starting_cash <= 0:
        raise fail(f"--cash {starting_cash:g}: must be above 0")
    return starting_cash


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
    start: datetime | None,
    end: datetime | None,
    settings: Settings,
) -> tuple[BacktestResult, dict[str, list[tuple[float, float]]]]:
    bars = read_csv(path, symbols[0] if symbols and len(symbols) == 1 else None)
    begin = start or bars[0].start
    finish = end or bars[-1].start + timedelta(minutes=1)
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
    history: History,
    strategies: list[Strategy],
    broker: PaperBroker,
    cash: float,
    start: datetime,
    end: datetime,
    store: bool,
    show_progress: bool,
    tag: Tag,
) -> tuple[BacktestResult, dict[str, list[tuple[float, float]]]]:
    source, symbols, replay = history.source, history.symbols, history.replay
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
        with Progress(*columns, console=console, transient=True, disable=not show_progress) as progress:
            task = progress.add_task("replay", total=total, events=0)
            async for chunk in _chunks(_history(conn, source, symbols, replay, start, end)):
                backtest.feed(chunk)
                _sample_prices(prices, chunk)
                progress.update(
                    task, completed=(chunk[-1].time - start).total_seconds(), events=backtest.result.events
                )
        result = backtest.finish()
        if store:
            from tradebot.backtest.store import save_backtest

            await save_backtest(conn, result, source, *tag)
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
            start,
            end,
            symbols,
        )
    }
    missing = sorted(set(symbols or []) - found) if symbols else ([] if found else ["any symbol"])
    if missing:
        raise DataError(
            f"no {replay} for {', '.join(missing)} in {source} "
            f"between {start.isoformat()} and {end.isoformat()}"
        )


@app.command()
def sweep(
    strategy: Annotated[str, typer.Option("--strategy", help="The strategy to tune.")],
    grid: Annotated[
        list[str], typer.Option("--grid", help="A parameter's values: name=v1,v2,... (repeatable).")
    ],
    param: Annotated[
        list[str] | None, typer.Option("--param", help="A fixed parameter, name=value.", show_default=False)
    ] = None,
    source: Annotated[
        str | None, typer.Option(help="Data source (default DATA_SOURCE).", show_default=False)
    ] = None,
    symbols: Annotated[str | None, typer.Option(help="Symbols, comma-separated (default: all).")] = None,
    start: Annotated[str | None, typer.Option(help="Start time, ISO 8601.", show_default=False)] = None,
    end: Annotated[str | None, typer.Option(help="End time, ISO 8601.", show_default=False)] = None,
    replay: Annotated[
        str, typer.Option(help="What history to replay: ticks, bars, provider-bars.")
    ] = "ticks",
    data: Annotated[Path | None, typer.Option(help="An OHLCV CSV file instead of the database.")] = None,
    cash: Annotated[float | None, typer.Option(help="Starting cash (default STARTING_CASH).")] = None,
    jobs: Annotated[int, typer.Option(help="Parameter sets run in parallel (processes).", min=1, max=64)] = 1,
    rank: Annotated[str, typer.Option(help=f"Metric to rank by: {', '.join(RANKABLE)}.")] = "sharpe",
    train_until: Annotated[
        str | None,
        typer.Option(help="Rank on data before this time; score the best after it.", show_default=False),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the ranking as JSON.")] = False,
    index: Annotated[
        int | None,
        typer.Option(
            help="Run and store only parameter set N (0-based, in grid order): one pod of a Kubernetes "
            "Indexed Job, which sets JOB_COMPLETION_INDEX.",
            envvar="JOB_COMPLETION_INDEX",
            show_default=False,
        ),
    ] = None,
    run_id: Annotated[str | None, typer.Option("--run", help=RUN_HELP, show_default=False)] = None,
) -> None:
    """Run every combination of `--grid` values in parallel, ranked (out of sample with --train-until)."""
    settings = settings_or_exit()
    if rank not in RANKABLE:
        raise fail(f"--rank {rank!r}: choose one of {', '.join(RANKABLE)}")
    try:
        values = parse_grid(grid)
    except ValueError as error:
        raise fail(str(error)) from None
    fixed = parse_params([strategy], param or [], None)[strategy]
    sets = combinations(values, fixed)
    for params in sets:  # refuse a bad set before running anything
        configured(settings, strategy, [f"{k}={json.dumps(v)}" for k, v in params.items()], None)
    history = history_of(settings, source, symbols, replay, data, start, end)
    starting_cash = checked_cash(settings, cash)
    if index is not None:
        _sweep_index(settings, strategy, sets, index, history, starting_cash, run_id, train_until)
        return
    cut = parse_time("--train-until", train_until) if train_until else None
    if (
        cut is not None
        and history.start is not None
        and history.end is not None
        and not history.start < cut < history.end
    ):
        raise fail(f"--train-until {train_until} must lie inside --start/--end")
    jobs_args = [(strategy, params, history, starting_cash, None, cut) for params in sets]
    rows = _run_jobs(jobs_args, jobs)
    table = ranked(rows, rank)
    best = table[0]
    outcome: dict[str, Any] = {"strategy": strategy, "rank": rank, "sets": len(table), "results": table}
    if cut is not None:
        outcome["out_of_sample"] = _run_jobs(
            [(strategy, best["params"], history, starting_cash, cut, None)], 1
        )[0]
    if as_json:
        out.print_json(json.dumps(outcome))
        return
    shown = ("return_pct", "sharpe", "sortino", "max_drawdown_pct", "win_rate_pct", "profit_factor", "trades")
    title = f"{strategy}: {len(table)} sets ranked by {rank}" + (" on the training range" if cut else "")
    view = Table("#", "parameters", *shown, title=title, title_justify="left")
    for place, row in enumerate(table, start=1):
        described = ", ".join(f"{k}={v}" for k, v in row["params"].items())
        view.add_row(str(place), described, *(str(row["metrics"].get(k)) for k in shown))
    if cut is not None:
        tested = outcome["out_of_sample"]["metrics"]
        view.add_row("test", "best set, after --train-until", *(str(tested.get(k)) for k in shown))
    out.print(view)


def _sweep_index(
    settings: Settings,
    strategy: str,
    sets: list[dict[str, Any]],
    index: int,
    history: History,
    cash: float,
    run_id: str | None,
    train_until: str | None,
) -> None:
    """One parameter set of a sweep, stored (tagged with its index) and printed as JSON."""
    if not 0 <= index < len(sets):
        raise fail(f"--index {index}: the grid has {len(sets)} parameter sets (0 to {len(sets) - 1})")
    if train_until:
        raise fail("--train-until ranks a whole sweep; with --index each set is scored on its own")
    strategies = build_strategies([strategy], {strategy: sets[index]})
    try:
        result, _ = replay_history(settings, history, strategies, cash, progress=False, tag=(run_id, index))
    except DataError as error:
        raise fail(str(error)) from None
    out.print_json(json.dumps({"index": index, "params": sets[index], "metrics": result.summary()}))


def _run_jobs(jobs_args: list[tuple], jobs: int) -> list[dict[str, Any]]:
    try:
        if jobs == 1 or len(jobs_args) == 1:
            return [_sweep_job(args) for args in jobs_args]
        with multiprocessing.get_context("spawn").Pool(jobs) as pool:
            return pool.map(_sweep_job, jobs_args)
    except DataError as error:
        raise fail(str(error)) from None


def _sweep_job(args: tuple) -> dict[str, Any]:
    """One parameter set over [start, end) of the history (a process of its own under --jobs)."""
    strategy, params, history, cash, start, end = args
    from tradebot.common.settings import load_settings

    settings = load_settings()
    strategies = build_strategies([strategy], {strategy: params})
    result, _ = replay_history(settings, history, strategies, cash, start, end, store=False, progress=False)
    return {"params": params, "metrics": result.summary()}
