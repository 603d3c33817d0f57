"""`tradebot up`: the whole stack on one machine, on embedded servers or given ones.

REDIS_URL and DATABASE_URL (from the environment or `.env`) select given servers; when one
is set it must answer, or `up` stops naming it: a typo never silently becomes an embedded
server. The same holds for API_URL (the dashboard's way to the API) and for the ports.
"""

from __future__ import annotations

import asyncio
import errno
import os
import secrets
import signal
from pathlib import Path
from urllib.parse import urlsplit

import asyncpg
from redis.asyncio import Redis
from rich.console import Console
from rich.panel import Panel

from tradebot.catalog import PIPELINE, SERVICES
from tradebot.common import timescaledb
from tradebot.common.probes import bind_socket
from tradebot.common.settings import Settings
from tradebot.local.connection import CONNECTION_FILE, remove_connection_file, write_connection_file
from tradebot.local.embedded import EmbeddedPostgres, EmbeddedRedis, EmbeddedServerError
from tradebot.local.guard import Guard
from tradebot.local.supervisor import Supervisor
from tradebot.providers.registry import DATA_SOURCES
from tradebot.storage.schema import SchemaError, ensure_schema

CONNECT_TIMEOUT = 5.0
PORTS = {"api": ("api_port", "API_PORT"), "dashboard": ("dashboard_port", "DASHBOARD_PORT")}


class StackProblem(Exception):
    """A setting `up` cannot run with; the message names the variable and what to do."""


def stack_services(settings: Settings, only: list[str] | None) -> list[str]:
    """The market-data service of DATA_SOURCE, then the rest of the pipeline that exists."""
    wanted = [DATA_SOURCES[settings.data_source].service_id, *PIPELINE]
    chosen = [sid for sid in wanted if sid in SERVICES]
    if only:
        unknown = sorted(set(only) - set(SERVICES))
        if unknown:
            raise StackProblem(f"--only names unknown services {unknown}; known: {sorted(SERVICES)}")
        chosen = [sid for sid in chosen if sid in only] or list(only)
    return chosen


def redacted(url: str) -> str:
    """A URL fit to print: its password replaced by ***."""
    parts = urlsplit(url)
    if not parts.password:
        return url
    return parts._replace(netloc=parts.netloc.replace(f":{parts.password}@", ":***@", 1)).geturl()


def explicit(settings: Settings, field: str) -> bool:
    """Whether a setting was given (environment or `.env`), not left at its default."""
    return field in settings.model_fields_set


def resolve_ports(settings: Settings, services: list[str]) -> dict[str, int]:
    """API_PORT and DASHBOARD_PORT as bound ports: 0 picks a free one here (so the banner, the
    dashboard's API_URL and restarts all use the same); a port in use is refused."""
    ports = {}
    for service, (field, variable) in PORTS.items():
        wanted = getattr(settings, field)
        if service not in services:
            ports[variable] = wanted
            continue
        try:
            with bind_socket(settings.bind_host, wanted) as probe:
                ports[variable] = probe.getsockname()[1]
        except OSError as error:
            if error.errno != errno.EADDRINUSE:
                raise
            raise StackProblem(
                f"{variable}={wanted} is in use on this machine (another `tradebot up`, or `kubectl "
                f"port-forward`?): stop what holds it, or set {variable} to a free port (0 picks one)"
            ) from None
    return ports


async def redis_problem(url: str) -> str | None:
    try:
        client = Redis.from_url(url, socket_connect_timeout=CONNECT_TIMEOUT, socket_timeout=CONNECT_TIMEOUT)
        try:
            await client.ping()
        finally:
            await client.aclose()
    except Exception as error:  # any failure is the answer: what the server or the URL said
        return f"{type(error).__name__}: {error}"
    return None


async def postgres_problem(url: str) -> str | None:
    try:
        conn = await asyncpg.connect(url, timeout=CONNECT_TIMEOUT)
        await conn.close()
    except Exception as error:  # any failure is the answer: what the server or the URL said
        return f"{type(error).__name__}: {error}"
    return None


async def check_given_servers(settings: Settings) -> None:
    """Every server URL that was set must answer: refuse it by name instead of replacing it."""
    checks = [
        ("REDIS_URL", settings.redis_url, "Redis", redis_problem),
        ("DATABASE_URL", settings.database_url, "PostgreSQL", postgres_problem),
    ]
    for variable, url, what, problem_of in checks:
        if explicit(settings, variable.lower()) and (problem := await problem_of(url)):
            raise StackProblem(
                f"{variable}={redacted(url)} is set, but no {what} answers there ({problem}). "
                f"Start that server or correct {variable}; unset it to run on an embedded {what}."
            )
    if explicit(settings, "api_url"):
        parts = urlsplit(settings.api_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise StackProblem(f"API_URL={settings.api_url!r} is not an http(s) URL with a host")


def auth_token(settings: Settings) -> str:
    """AUTH_TOKEN when it is set, else a new one for this run (printed in the dashboard's URL)."""
    given = settings.auth_token
    return given.get_secret_value() if given is not None else secrets.token_urlsafe(32)


def run_stack(settings: Settings, data_dir: Path, only: list[str] | None, console: Console) -> int:
    guard = None
    embedded: list[EmbeddedRedis | EmbeddedPostgres] = []
    try:
        services = stack_services(settings, only)
        asyncio.run(check_given_servers(settings))
        env = {**os.environ, **{k: str(v) for k, v in resolve_ports(settings, services).items()}}
        env["API_URL"] = (
            settings.api_url if explicit(settings, "api_url") else f"http://127.0.0.1:{env['API_PORT']}"
        )
        env["AUTH_TOKEN"], env["BIND_HOST"] = auth_token(settings), settings.bind_host
        guard = Guard()  # from here on, whatever ends this process ends what it started
        for variable, server in (
            ("REDIS_URL", EmbeddedRedis(data_dir.resolve() / "redis")),
            ("DATABASE_URL", EmbeddedPostgres(data_dir.resolve() / "postgres")),
        ):
            if explicit(settings, variable.lower()):
                env[variable] = getattr(settings, variable.lower())
                continue
            env[variable] = server.start()
            embedded.append(server)
            guard.watch_server(server.pid, server.stop_signal)
        backend = asyncio.run(_create_schema(env["DATABASE_URL"], settings.data_source))
        write_connection_file(data_dir, env)
        _announce(console, settings, services, env, backend, bool(embedded), data_dir)
        asyncio.run(_supervise(services, env, console, guard))
        return 0
    except StackProblem as error:
        console.print(f"[bold red]Cannot start the stack:[/] {error}", highlight=False)
        return 2
    except EmbeddedServerError as error:
        console.print(f"[bold red]{error}[/]")
        return 1
    except (OSError, asyncpg.PostgresError, SchemaError) as error:
        console.print(f"[bold red]Cannot prepare the database:[/] {error}")
        return 1
    finally:
        remove_connection_file(data_dir)
        for server in reversed(embedded):
            server.stop()
        if guard is not None:
            guard.close()


async def _create_schema(database_url: str, source: str) -> str:
    """Create the tables; what the database runs on (TimescaleDB or plain PostgreSQL)."""
    conn = await asyncpg.connect(database_url)
    try:
        await ensure_schema(conn, (source,))
        return (await timescaledb.read_backend(conn))[1]
    finally:
        await conn.close()


async def _supervise(services: list[str], env: dict[str, str], console: Console, guard: Guard) -> None:
    supervisor = Supervisor(services, env, console, guard)
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, supervisor.stop)
    await supervisor.run()
    console.print("[bold]TradeBot stopped.[/]")


def _announce(
    console: Console,
    settings: Settings,
    services: list[str],
    env: dict,
    backend: str,
    embedded: bool,
    data_dir: Path,
) -> None:
    where = f"{backend}, embedded servers in {data_dir}" if embedded else f"{backend}, the configured servers"
    host = "localhost" if env["BIND_HOST"] in ("127.0.0.1", "0.0.0.0") else env["BIND_HOST"]
    dashboard = f"http://{host}:{env['DASHBOARD_PORT']}"
    reach = "this machine only" if env["BIND_HOST"].startswith("127.") else "other machines too"
    reads = "; reads open (AUTH=read-open)" if settings.auth == "read-open" else ""
    lines = [
        f"[bold]Services[/]   {', '.join(services)}",
        f"[bold]Data[/]       {settings.data_source}, symbol mode {settings.symbol_mode}",
        f"[bold]Storage[/]    {where}",
        f"[bold]Dashboard[/]  {dashboard} (log in with the token below)",
        f"[bold]API[/]        http://{host}:{env['API_PORT']}/docs (Authorization: Bearer <token>{reads})",
        f"[bold]Listening[/]  {env['BIND_HOST']} ({reach}; BIND_HOST or --host to change)",
        f"[bold]Servers[/]    {data_dir / CONNECTION_FILE} (other tradebot commands here find them)",
        "Press Ctrl-C to stop.",
    ]
    console.print(Panel("\n".join(lines), title="TradeBot is starting", expand=False))
    # Unwrapped, to be copied whole (as Jupyter prints its URL): opening it logs in.
    token = env["AUTH_TOKEN"]
    console.print(f"Open the dashboard: {dashboard}/?token={token}", soft_wrap=True, highlight=False)
    console.print(f"API token (AUTH_TOKEN): {token}", soft_wrap=True, highlight=False)
