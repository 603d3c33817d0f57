"""`tradebot`: run the trading system on this machine, or one service in a container."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

from tradebot import __version__
from tradebot.catalog import SERVICE_SUMMARIES, SERVICES
from tradebot.cli import backfill as backfill_cli
from tradebot.cli import backtest as backtest_cli
from tradebot.cli import db as db_cli
from tradebot.cli import sources as sources_cli
from tradebot.cli import strategies as strategies_cli
from tradebot.cli import symbols as symbols_cli
from tradebot.cli.common import console, settings_or_exit
from tradebot.cli.dashboard import dashboard, demo
from tradebot.local.connection import DATA_DIR_VARIABLE, DEFAULT_DATA_DIR

app = typer.Typer(
    name="tradebot",
    help=(
        "TradeBot — real-time paper trading on Redis Streams and TimescaleDB.\n\n"
        "Market data flows over Redis Streams to strategies, whose signals a paper-trading "
        "execution service turns into orders and fills; storage writes everything to "
        "PostgreSQL/TimescaleDB.\n\n"
        "Configuration comes from environment variables and a `.env` file "
        "(DATA_SOURCE, SYMBOL_MODE, SYMBOLS, REDIS_URL, DATABASE_URL, ...)."
    ),
    no_args_is_help=True,
    rich_markup_mode="markdown",
    pretty_exceptions_show_locals=False,
)

# The catalog's service ids as the choices of `tradebot service` (mypy cannot see members made at runtime).
ServiceName = StrEnum("ServiceName", {name: name for name in SERVICES})  # type: ignore[misc]


def version_callback(value: bool) -> None:
    if value:
        console.print(f"tradebot {__version__}")
        raise typer.Exit()


@app.callback()
def main(
    version: Annotated[
        bool, typer.Option("--version", callback=version_callback, is_eager=True, help="Print the version.")
    ] = False,
) -> None:
    """TradeBot command line."""


@app.command()
def up(
    data_dir: Annotated[
        Path,
        typer.Option(
            envvar=DATA_DIR_VARIABLE, help="Where the embedded Redis and PostgreSQL keep their data."
        ),
    ] = DEFAULT_DATA_DIR,
    only: Annotated[
        list[str] | None,
        typer.Option("--only", help="Run just these services (repeatable), e.g. --only strategy."),
    ] = None,
    host: Annotated[
        str | None,
        typer.Option(help="Interface to listen on (default BIND_HOST, 127.0.0.1: this machine only)."),
    ] = None,
) -> None:
    """Run the **whole stack** on this machine until Ctrl-C.

    Without REDIS_URL / DATABASE_URL it starts a real Redis and PostgreSQL from Python
    wheels under `--data-dir` (kept across restarts); with them set, it uses those servers
    (and stops, naming the variable, when one does not answer). Each service runs in its own
    process and is restarted if it dies; all of them stop with `tradebot up`, however it ends.

    The API and the dashboard need AUTH_TOKEN; without one `up` makes one for this run and prints
    the dashboard's URL with it (opening it logs in).
    """
    from tradebot.local.stack import run_stack
    from tradebot.local.supervisor import output_console

    settings = settings_or_exit(find_stack=False)  # its own last run's servers are no setting
    if host is not None:
        settings = settings.model_copy(update={"bind_host": host})
    raise typer.Exit(run_stack(settings, data_dir, only, output_console()))


def service(
    name: Annotated[ServiceName, typer.Argument(help="The service to run.", show_default=False)],
) -> None:
    from tradebot.catalog import build_service
    from tradebot.common.service import run_service

    settings = settings_or_exit()
    try:
        run_service(lambda s: build_service(name.value, s), settings)
    except ValueError as error:  # a service rejected its configuration
        console.print(f"[bold red]Configuration error[/]\n{error}", highlight=False)
        raise typer.Exit(2) from None


service.__doc__ = "Run **one service** (the container entrypoint) until SIGTERM.\n\n" + "\n\n".join(
    f"* `{k}`: {v}" for k, v in SERVICE_SUMMARIES.items()
)
app.command()(service)
app.command()(dashboard)
app.command()(demo)


@app.command(
    context_settings={"allow_extra_args": True, "ignore_unknown_options": True, "help_option_names": []},
)
def operator(ctx: typer.Context) -> None:
    """Run the **TradingStack operator** (Kubernetes); `tradebot operator --help` lists its options.

    Watches `--namespace NS` (repeatable) or the whole cluster; `tradebot operator crd` prints the CRD.
    Needs the `operator` extra (kopf, kubernetes).
    """
    from tradebot_operator.run import main as operator_main

    raise typer.Exit(operator_main(ctx.args))


app.add_typer(backfill_cli.app, name="backfill")
app.add_typer(symbols_cli.app, name="symbols")
app.add_typer(sources_cli.app, name="sources")
app.add_typer(db_cli.app, name="db")
app.add_typer(strategies_cli.app, name="strategies")
app.add_typer(backtest_cli.app, name="backtest")
