"""`tradebot symbols`: the original's manage_symbols.py — list, test, fetch, benchmark, samples."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from tradebot.cli.common import fail, out, settings_or_exit
from tradebot.common.settings import Settings, reveal
from tradebot.common.symbols import (
    MODE_DESCRIPTIONS,
    UNIVERSE_MODES,
    Universe,
    normalise_symbol,
    refreshed_universe_path,
    select_symbols,
    websocket_symbols,
)
from tradebot.providers.registry import DATA_SOURCES

app = typer.Typer(
    help="Inspect and refresh the **symbol universe** behind SYMBOL_MODE.", no_args_is_help=True
)
MODES = ("custom", *UNIVERSE_MODES, "all")


def current_universe(settings: Settings) -> tuple[Universe, str]:
    """The universe services use (a refreshed file when present), and where it came from."""
    path = refreshed_universe_path(settings.symbols_file)
    if path is None:
        return Universe.load(), "packaged"
    try:
        return Universe.load(path), str(path)
    except (OSError, ValueError, KeyError) as error:
        raise fail(f"the refreshed universe {path} is unreadable ({error}); fix or delete it") from None


def check_mode(mode: str) -> str:
    if mode not in MODES:
        raise fail(f"unknown symbol mode {mode!r}; choose one of: {', '.join(MODES)}")
    return mode


@app.command("list")
def list_symbols(
    mode: Annotated[str, typer.Argument(help=f"One of: {', '.join(MODES)}.")],
    limit: Annotated[int | None, typer.Option("--limit", min=1, help="Show at most this many.")] = None,
) -> None:
    """List the symbols of a mode, capped by MAX_SYMBOLS (and --limit)."""
    check_mode(mode)
    settings = settings_or_exit()
    universe, origin = current_universe(settings)
    cap = min(limit or settings.max_symbols, settings.max_symbols)
    symbols = select_symbols(mode, settings.symbols, cap, universe)
    out.print(f"Universe: {origin}", highlight=False, soft_wrap=True)
    table = Table(title=f"{mode}: {MODE_DESCRIPTIONS[mode]}")
    table.add_column("#", justify="right")
    table.add_column("symbol")
    table.add_column("streams live", justify="center")
    live = set(websocket_symbols(symbols, settings.max_websocket_symbols))
    for index, symbol in enumerate(symbols, 1):
        table.add_row(str(index), symbol, "✓" if symbol in live else "")
    out.print(table)
    out.print(f"{len(symbols)} symbols; the first {len(live)} stream live (MAX_WEBSOCKET_SYMBOLS).")


@app.command()
def test() -> None:
    """Check the configuration: every mode resolves, and what the configured one selects."""
    settings = settings_or_exit()
    universe, origin = current_universe(settings)
    out.print(f"Universe: {origin}", highlight=False, soft_wrap=True)
    table = Table(title="Symbol modes")
    for header in ("mode", "symbols", "after MAX_SYMBOLS", "live", "first symbols"):
        table.add_column(header)
    problems = []
    for mode in MODES:
        try:
            chosen = select_symbols(mode, settings.symbols, settings.max_symbols, universe)
        except ValueError as error:
            problems.append(f"{mode}: {error}")
            continue
        full = len(settings.symbols) if mode == "custom" else len(universe.symbols(mode))
        marker = " ◀ SYMBOL_MODE" if mode == settings.symbol_mode else ""
        live = len(websocket_symbols(chosen, settings.max_websocket_symbols))
        table.add_row(mode + marker, str(full), str(len(chosen)), str(live), ", ".join(chosen[:6]))
        if not chosen:
            problems.append(f"{mode}: selects no symbols")
    out.print(table)
    if problems:
        raise fail("\n".join(problems), 1)
    out.print(f"[green]OK[/]: SYMBOL_MODE={settings.symbol_mode} selects symbols for {settings.data_source}.")


def universe_from_assets(assets: list, packaged: Universe) -> dict[str, list[str]]:
    """Pure: keep each mode's symbols that are still active and tradable; `all` is every such asset."""
    active = []
    for asset in assets:
        status = getattr(asset.status, "value", asset.status)
        if not asset.tradable or status != "active":
            continue
        try:
            active.append(normalise_symbol(asset.symbol))
        except ValueError:
            continue
    alive = set(active)
    modes = {mode: [s for s in packaged.symbols(mode) if s in alive] for mode in UNIVERSE_MODES}
    ranked = [s for mode in UNIVERSE_MODES for s in modes[mode]]
    modes["all"] = list(dict.fromkeys([*ranked, *sorted(alive)]))
    return modes


@app.command()
def fetch(
    output: Annotated[
        Path | None,
        typer.Option("--output", help="Where to write it (default: SYMBOLS_FILE).", show_default=False),
    ] = None,
) -> None:
    """Refresh the universe from Alpaca's assets API (active, tradable US equities).

    Needs ALPACA_KEY and ALPACA_SECRET (ALPACA_TRADING_URL picks the endpoint). Writes a JSON
    file that every service then prefers over the packaged universe.
    """
    from alpaca.common.exceptions import APIError
    from alpaca.trading.client import TradingClient
    from alpaca.trading.enums import AssetClass, AssetStatus
    from alpaca.trading.requests import GetAssetsRequest

    from tradebot.providers.history import credentials_problem

    settings = settings_or_exit()
    problem = credentials_problem("alpaca", settings)
    if problem:
        raise fail(problem)
    client = TradingClient(
        reveal(settings.alpaca_key), reveal(settings.alpaca_secret), url_override=settings.alpaca_trading_url
    )
    try:
        assets = client.get_all_assets(
            GetAssetsRequest(status=AssetStatus.ACTIVE, asset_class=AssetClass.US_EQUITY)
        )
    except APIError as error:
        try:
            answer = error.message
        except (ValueError, KeyError, TypeError):
            answer = str(error)
        raise fail(
            f"Alpaca rejected the assets request (HTTP {error.status_code}: {answer}); "
            "check ALPACA_KEY/ALPACA_SECRET",
            1,
        ) from None
    except OSError as error:
        raise fail(f"could not reach Alpaca at {settings.alpaca_trading_url}: {error}", 1) from None
    modes = universe_from_assets(list(assets), Universe.load())
    if not modes["all"]:
        raise fail("Alpaca listed no active tradable assets; keeping the current universe", 1)
    path = (output or Path(settings.symbols_file)).expanduser()
    path.parent.mkdir(parents=True, exist_ok=True)
    document = {"version": 1, "description": "Symbol universes refreshed from Alpaca's assets API.",
                "fetched_at": datetime.now(UTC).isoformat(), "modes": modes}  # fmt: skip
    temporary = path.with_suffix(".tmp")
    temporary.write_text(json.dumps(document, indent=1))
    temporary.replace(path)
    Universe.load(path)  # what we wrote must load
    out.print(f"Wrote {path}: " + ", ".join(f"{mode} {len(symbols)}" for mode, symbols in modes.items()))


@app.command()
def benchmark(
    rounds: Annotated[int, typer.Option("--rounds", min=1, max=100_000, help="Repetitions per mode.")] = 200,
) -> None:
    """Time symbol selection per mode (universe load + selection), as services do at start."""
    settings = settings_or_exit()
    table = Table(title=f"Symbol selection, {rounds} rounds per mode")
    for header in ("mode", "symbols", "ms per selection", "selections/s"):
        table.add_column(header, justify="left" if header == "mode" else "right")
    for mode in MODES:
        began = time.perf_counter()
        for _ in range(rounds):
            chosen = select_symbols(mode, settings.symbols, settings.max_symbols)
        elapsed = time.perf_counter() - began
        table.add_row(mode, str(len(chosen)), f"{elapsed / rounds * 1000:.3f}", f"{rounds / elapsed:,.0f}")
    out.print(table)


SAMPLE_LIMITS = {"custom": (5, 5), "popular": (100, 30), "large": (50, 30), "mid": (50, 30),
                 "small": (100, 30), "all": (500, 30)}  # fmt: skip


def sample_env(mode: str, source: str) -> str:
    """Pure: a commented .env for one mode."""
    max_symbols, max_ws = SAMPLE_LIMITS[mode]
    lines = [
        f"# TradeBot sample: SYMBOL_MODE={mode} — {MODE_DESCRIPTIONS[mode]}",
        f"DATA_SOURCE={source}",
        f"SYMBOL_MODE={mode}",
        *(["SYMBOLS=AAPL,MSFT,AMZN,GOOG,TSLA"] if mode == "custom" else []),
        f"MAX_SYMBOLS={max_symbols}",
        f"MAX_WEBSOCKET_SYMBOLS={max_ws}",
        "BACKFILL_BATCH_SIZE=10",
        "BACKFILL_CONCURRENT_REQUESTS=3",
        "RATE_LIMIT_DELAY=0.5",
        "# ALPACA_KEY=... ALPACA_SECRET=...   (DATA_SOURCE=alpaca)",
        "# POLYGON_API_KEY=...                (DATA_SOURCE=polygon)",
    ]
    return "\n".join(lines) + "\n"


@app.command()
def samples(
    directory: Annotated[Path, typer.Option("--dir", help="Where to write the .env.<mode> files.")] = Path(
        "."
    ),
    source: Annotated[str, typer.Option("--source", help="DATA_SOURCE in the samples.")] = "synthetic",
    force: Annotated[bool, typer.Option("--force", help="Overwrite existing files.")] = False,
) -> None:
    """Write a sample `.env.<mode>` per symbol mode (copy one to `.env`)."""
    if source not in DATA_SOURCES:
        raise fail(f"--source {source!r} is not one of: {', '.join(DATA_SOURCES)}")
    paths = {mode: directory / f".env.{mode}" for mode in MODES}
    existing = [str(p) for p in paths.values() if p.exists()]
    if existing and not force:
        raise fail(f"refusing to overwrite {', '.join(existing)} (use --force)")
    directory.mkdir(parents=True, exist_ok=True)
    for mode, path in paths.items():
        path.write_text(sample_env(mode, source))
    out.print(f"Wrote {len(paths)} samples to {directory}: " + ", ".join(p.name for p in paths.values()))
