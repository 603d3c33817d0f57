"""The TimescaleDB this project runs, in one place: its version, the source archive the
embedded build is made from, and the server settings every deployment uses.

`scripts/timescaledb/build.sh` builds this version for the embedded PostgreSQL; the
operator's TimescaleDB image carries the same version on the same PostgreSQL major;
both servers start with `SERVER_SETTINGS`.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

VERSION = "2.29.2"
POSTGRES_MAJOR = 18
# SHA-256 of `git archive --prefix=timescaledb-<VERSION>/ <VERSION> | gzip -n -9` (shared/vendor/).
SOURCE_SHA256 = "0f987b8c6a0ef996502b779d9c75ff38cc5057e11c7d3a2e3e4748e3607c0589"
IMAGE = f"timescale/timescaledb:{VERSION}-pg{POSTGRES_MAJOR}"

# Preloaded (it hooks the planner and runs the policies' background jobs) and quiet.
SERVER_SETTINGS: dict[str, str] = {
    "shared_preload_libraries": "timescaledb",
    "timescaledb.telemetry_level": "off",
}


# What a database runs on: the extension's version (NULL without it) and the server's.
_BACKEND_SQL = """
SELECT (SELECT extversion FROM pg_extension WHERE extname = 'timescaledb') AS timescaledb,
       current_setting('server_version') AS server
"""


def backend_name(extension_version: str | None, server_version: str) -> str:
    """Pure: 'TimescaleDB 2.29.2 on PostgreSQL 18.6', or 'PostgreSQL 18.6' without the extension."""
    server = f"PostgreSQL {server_version.split()[0]}"
    return f"TimescaleDB {extension_version} on {server}" if extension_version else server


async def read_backend(conn: Any) -> tuple[str | None, str]:
    """The extension's version (None without it) and backend_name, from an asyncpg connection."""
    row = await conn.fetchrow(_BACKEND_SQL)
    return row["timescaledb"], backend_name(row["timescaledb"], row["server"])


def cache_root() -> Path:
    """Where build.sh keeps its builds (TRADEBOT_CACHE_DIR, as for the control plane)."""
    base = os.environ.get("TRADEBOT_CACHE_DIR") or Path.home() / ".cache" / "tradebot"
    return Path(base) / "timescaledb"


def build_dir(postgres_version: str, root: Path | None = None) -> Path:
    """The directory build.sh installs this version into for that PostgreSQL (e.g. 18.6)."""
    return (root or cache_root()) / f"{VERSION}-pg{postgres_version}"


def find_build(postgres_version: str, root: Path | None = None) -> Path | None:
    """The complete build for that PostgreSQL, or None (build.sh writes `.complete` last)."""
    path = build_dir(postgres_version, root)
    required = (".complete", "share/extension/timescaledb.control", "lib/timescaledb.so")
    return path if all((path / name).is_file() for name in required) else None


def embedded_settings(build: Path) -> dict[str, str]:
    """SERVER_SETTINGS, plus where a server not built with the extension finds it (PostgreSQL 18),
    and room for its background jobs: a scheduler per database and the policies' jobs (the
    image's timescaledb-tune sizes these on Kubernetes)."""
    return {
        **SERVER_SETTINGS,
        "max_worker_processes": "32",
        "timescaledb.max_background_workers": "16",
        "extension_control_path": f"{build / 'share'}:$system",
        "dynamic_library_path": f"{build / 'lib'}:$libdir",
    }
