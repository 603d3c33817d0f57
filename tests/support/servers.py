"""Real Redis and PostgreSQL for tests, from the same wheels as the embedded default."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import asyncpg

from tradebot.local.embedded import EmbeddedPostgres, EmbeddedRedis


@contextmanager
def redis_server(data_dir: Path) -> Iterator[str]:
    server = EmbeddedRedis(data_dir)
    try:
        yield server.start()
    finally:
        server.stop()


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
