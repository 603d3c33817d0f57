"""`tradebot up`: the whole stack on one machine, on embedded servers or given ones."""

from __future__ import annotations

import asyncio
import os
import signal
from pathlib import Path

import asyncpg
from rich.console import Console
from rich.panel import Panel

from tradebot.catalog import PIPELINE, SERVICES
from tradebot.common.settings import Settings
from tradebot.local.embedded import EmbeddedPostgres, EmbeddedRedis, EmbeddedServerError
from tradebot.local.supervisor import Supervisor
from tradebot.providers.registry import DATA_SOURCES
from tradebot.storage.schema import ensure_schema

CONNECTION_FILE = "stack.env"


def stack_services(settings: Settings, only: list[str] | None) -> list[str]:
    """The market-data service of DATA_SOURCE, then the rest of the pipeline that exists."""
    wanted = [DATA_SOURCES[settings.data_source].service_id, *PIPELINE]
    chosen = [sid for sid in wanted if sid in SERVICES]
    if only:
        unknown = sorted(set(only) - set(SERVICES))
        if unknown:
            raise ValueError(f"--only names unknown services {unknown}; known: {sorted(SERVICES)}")
        chosen = [sid for sid in chosen if sid in only] or list(only)
    return chosen


def run_stack(settings: Settings, data_dir: Path, only: list[str] | None, console: Console) -> int:
    try:
        services = stack_services(settings, only)
    except ValueError as error:
        console.print(f"[bold red]{error}[/]")
        return 2
    env = dict(os.environ)
    if "API_URL" not in settings.model_fields_set:  # the dashboard follows a non-default API_PORT
        env["API_URL"] = f"http://127.0.0.1:{settings.api_port}"
    embedded = []
    try:
        if "REDIS_URL" not in settings.model_fields_set:
            redis = EmbeddedRedis(data_dir.resolve() / "redis")
            env["REDIS_URL"] = redis.start()
            embedded.append(redis)
        if "DATABASE_URL" not in settings.model_fields_set:
            postgres = EmbeddedPostgres(data_dir.resolve() / "postgres")
            env["DATABASE_URL"] = postgres.start()
            embedded.append(postgres)
        asyncio.run(_create_schema(env["DATABASE_URL"], settings.data_source))
        write_connection_file(data_dir / CONNECTION_FILE, env)
        _announce(console, settings, services, env, bool(embedded), data_dir)
        asyncio.run(_supervise(services, env, console))
        return 0
    except EmbeddedServerError as error:
        console.print(f"[bold red]{error}[/]")
        return 1
    except (OSError, asyncpg.PostgresError) as error:
        console.print(f"[bold red]Cannot prepare the database:[/] {error}")
        return 1
    finally:
        for server in reversed(embedded):
            server.stop()


def write_connection_file(path: Path, env: dict[str, str]) -> None:
    """Where the running stack's servers are, for other commands: `set -a; . .tradebot/stack.env`."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f"REDIS_URL={env['REDIS_URL']}\nDATABASE_URL={env['DATABASE_URL']}\n")


async def _create_schema(database_url: str, source: str) -> None:
    conn = await asyncpg.connect(database_url)
    try:
        await ensure_schema(conn, (source,))
    finally:
        await conn.close()


async def _supervise(services: list[str], env: dict[str, str], console: Console) -> None:
    supervisor = Supervisor(services, env, console)
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, supervisor.stop)
    await supervisor.run()
    console.print("[bold]TradeBot stopped.[/]")


def _announce(
    console: Console, settings: Settings, services: list[str], env: dict, embedded: bool, data_dir: Path
) -> None:
    where = f"embedded servers in {data_dir}" if embedded else "the configured servers"
    lines = [
        f"[bold]Services[/]   {', '.join(services)}",
        f"[bold]Data[/]       {settings.data_source}, symbol mode {settings.symbol_mode}",
        f"[bold]Storage[/]    {where}",
        f"[bold]Dashboard[/]  http://localhost:{settings.dashboard_port}",
        f"[bold]API[/]        http://localhost:{settings.api_port}/docs",
        f"[bold]Servers[/]    {data_dir / CONNECTION_FILE} (REDIS_URL, DATABASE_URL)",
        "Press Ctrl-C to stop.",
    ]
    console.print(Panel("\n".join(lines), title="TradeBot is starting", expand=False))
