"""The symbol manager: modes, limits, and ticker validation."""

from __future__ import annotations

import pytest

from tradebot.common.symbols import Universe, normalise_symbol, select_symbols, websocket_symbols


def test_packaged_universe_has_every_mode():
    universe = Universe.load()
    sizes = {mode: len(universe.symbols(mode)) for mode in ("popular", "large", "mid", "small", "all")}
    assert sizes["large"] >= 45 and sizes["popular"] >= 90 and sizes["small"] >= 90
    assert sizes["all"] == len(set(universe.symbols("all"))) >= sizes["popular"]


def test_modes_and_limits():
    assert select_symbols("custom", ["aapl", "MSFT", "AAPL"], 500) == ["AAPL", "MSFT"]
    assert len(select_symbols("all", [], 50)) == 50
    assert select_symbols("large", [], 3) == list(Universe.load().symbols("large")[:3])
    assert websocket_symbols(["A", "B", "C"], 2) == ["A", "B"]


def test_unknown_mode_is_refused():
    with pytest.raises(ValueError, match="unknown symbol mode 'tiny'"):
        select_symbols("tiny", [], 10)


@pytest.mark.parametrize("raw", ["", "aapl!", "1ABC", "A B", "TOOLONGSYMBOLNAME"])
def test_bad_tickers(raw):
    with pytest.raises(ValueError, match="is not a ticker symbol"):
        normalise_symbol(raw)
