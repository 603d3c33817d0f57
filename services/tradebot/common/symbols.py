"""The symbol manager: which symbols a service trades, from SYMBOL_MODE and limits.

The universes of the non-custom modes ship with the package (`data/symbols.json`)
and can be replaced by a refreshed copy (`tradebot symbols fetch`) whose path is
given explicitly; nothing here touches the network.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING

from tradebot.common.models import SYMBOL_PATTERN

if TYPE_CHECKING:
    from tradebot.common.settings import Settings

UNIVERSE_MODES = ("popular", "large", "mid", "small")
MODE_DESCRIPTIONS = {
    "custom": "the symbols listed in SYMBOLS",
    "popular": "popular large-cap stocks (~100)",
    "large": "large-cap stocks (~50)",
    "mid": "mid-cap stocks (~50)",
    "small": "small-cap stocks (~100)",
    "all": "every symbol of the universe, up to MAX_SYMBOLS",
}


def normalise_symbol(raw: str) -> str:
    """Upper-case a ticker and reject anything that is not one (e.g. 'AAPL', 'BRK.B')."""
    symbol = raw.strip().upper()
    if not re.match(SYMBOL_PATTERN, symbol):
        raise ValueError(f"{raw!r} is not a ticker symbol (letters and digits, e.g. AAPL or BRK.B)")
    return symbol


@dataclass(frozen=True)
class Universe:
    """Symbols per mode; `all` is every mode's symbols in order, without repeats."""

    modes: Mapping[str, tuple[str, ...]]

    @classmethod
    def from_mapping(cls, data: Mapping[str, Iterable[str]]) -> Universe:
        modes = {mode: tuple(normalise_symbol(s) for s in data.get(mode, ())) for mode in data}
        if "all" not in modes:
            modes["all"] = tuple(dict.fromkeys(s for m in UNIVERSE_MODES for s in modes.get(m, ())))
        return cls(modes)

    @classmethod
    def load(cls, path: Path | None = None) -> Universe:
        """The packaged universe, or the one at `path` (a refreshed copy)."""
        if path is None:
            text = resources.files("tradebot.common").joinpath("data/symbols.json").read_text()
        else:
            text = path.read_text()
        return cls.from_mapping(json.loads(text)["modes"])

    def symbols(self, mode: str) -> tuple[str, ...]:
        if mode not in self.modes:
            raise ValueError(f"unknown symbol mode {mode!r}; choose one of {sorted(self.modes)}")
        return self.modes[mode]


DEFAULT_SYMBOLS_FILE = "~/.cache/tradebot/symbols.json"


def refreshed_universe_path(configured: str | None = None) -> Path | None:
    """The universe `tradebot symbols fetch` wrote, if any: at `configured` (Settings.symbols_file,
    which also reads `.env`), else SYMBOLS_FILE from the environment, else in the user's cache."""
    path = Path(configured or os.environ.get("SYMBOLS_FILE") or DEFAULT_SYMBOLS_FILE).expanduser()
    return path if path.is_file() else None


def select_symbols(
    mode: str, custom: Iterable[str], max_symbols: int, universe: Universe | None = None
) -> list[str]:
    """The symbols a service works on: the custom list or the mode's universe, capped.

    Without an explicit universe, a refreshed one (see `refreshed_universe_path`) wins
    over the packaged copy.
    """
    if mode == "custom":
        chosen = list(dict.fromkeys(normalise_symbol(s) for s in custom))
    else:
        chosen = list((universe or Universe.load(refreshed_universe_path())).symbols(mode))
    return chosen[:max_symbols]


def configured_symbols(settings: Settings) -> list[str]:
    """What SYMBOL_MODE, SYMBOLS, MAX_SYMBOLS and SYMBOLS_FILE select, for every service and command."""
    path = refreshed_universe_path(settings.symbols_file)
    universe = Universe.load(path) if path else None
    return select_symbols(settings.symbol_mode, settings.symbols, settings.max_symbols, universe)


def websocket_symbols(symbols: list[str], max_websocket_symbols: int) -> list[str]:
    """Providers cap live subscriptions: the first MAX_WEBSOCKET_SYMBOLS symbols stream."""
    return symbols[:max_websocket_symbols]
