"""What every command shares: its consoles, loading settings, and failing with one clear line."""

from __future__ import annotations

import typer
from rich.console import Console

from tradebot.common.settings import Settings, SettingsError, load_settings

console = Console(stderr=True)  # messages, progress and errors
out = Console()  # results a script may read


def fail(message: str, code: int = 2) -> typer.Exit:
    """Print what is wrong and return the Exit to raise: 2 for bad input, 1 for a failure outside us."""
    console.print(f"[bold red]{message}[/]", highlight=False)
    return typer.Exit(code)


def settings_or_exit() -> Settings:
    """Load settings; on a bad value print what is wrong and exit with status 2."""
    try:
        return load_settings()
    except SettingsError as error:
        console.print(f"[bold red]Configuration error[/]\n{error}", highlight=False)
        raise typer.Exit(2) from None
