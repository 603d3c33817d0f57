"""What every command shares: its consoles, loading settings, and failing with one clear line."""

from __future__ import annotations

import typer
from rich.console import Console

from tradebot.common.settings import Settings, SettingsError, load_settings
from tradebot.local.connection import running_stack_file

console = Console(stderr=True)  # messages, progress and errors
out = Console()  # results a script may read


def fail(message: str, code: int = 2) -> typer.Exit:
    """Print what is wrong and return the Exit to raise: 2 for bad input, 1 for a failure outside us."""
    console.print(f"[bold red]{message}[/]", highlight=False)
    return typer.Exit(code)


def settings_or_exit(find_stack: bool = True) -> Settings:
    """Load settings; on a bad value print what is wrong and exit with status 2.

    Below the environment and `.env`, a `tradebot up` running here supplies its servers
    (REDIS_URL, DATABASE_URL, API_URL: tradebot.local.connection), unless `find_stack` is off.
    """
    stack = running_stack_file() if find_stack else None
    try:
        return load_settings(_env_file=(stack, ".env") if stack else ".env")
    except SettingsError as error:
        console.print(f"[bold red]Configuration error[/]\n{error}", highlight=False)
        raise typer.Exit(2) from None
