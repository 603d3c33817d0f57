"""Where a running `tradebot up` is, so other commands on this machine reach its servers.

`tradebot up` writes `<data dir>/stack.env` (REDIS_URL, DATABASE_URL, API_URL and its own
pid) and removes it when it stops. Every other command reads it — below the environment
and `.env`, which still win — while that pid is alive, so `tradebot demo` or `tradebot
sources list` just work next to a running stack, and a stale file (after a SIGKILL) is
ignored. It stays shell-sourceable: `set -a; . .tradebot/stack.env; set +a`.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Mapping
from pathlib import Path

from dotenv import dotenv_values

CONNECTION_FILE = "stack.env"
DATA_DIR_VARIABLE = "TRADEBOT_DATA_DIR"
DEFAULT_DATA_DIR = Path(".tradebot")
PID_VARIABLE = "TRADEBOT_STACK_PID"
SHARED_VARIABLES = ("REDIS_URL", "DATABASE_URL", "API_URL")


def data_dir() -> Path:
    """The data directory of `tradebot up` run here: TRADEBOT_DATA_DIR, else `.tradebot`."""
    return Path(os.environ.get(DATA_DIR_VARIABLE) or DEFAULT_DATA_DIR)


def write_connection_file(directory: Path, env: Mapping[str, str]) -> Path:
    path = directory / CONNECTION_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = [f"{name}={env[name]}" for name in SHARED_VARIABLES] + [f"{PID_VARIABLE}={os.getpid()}"]
    path.write_text("\n".join(lines) + "\n")
    return path


def remove_connection_file(directory: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        (directory / CONNECTION_FILE).unlink()


def running_stack_file(directory: Path | None = None) -> Path | None:
    """The connection file of a `tradebot up` that is still running, or None."""
    path = (directory or data_dir()) / CONNECTION_FILE
    try:
        pid = int(dotenv_values(path).get(PID_VARIABLE) or 0)
    except (OSError, ValueError):
        return None
    if pid <= 0:
        return None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return None
    except PermissionError:
        pass  # another user's process: it runs
    return path
