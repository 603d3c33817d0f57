"""Market summary: each symbol's move against its price a day ago, and the top movers."""

from __future__ import annotations

from collections.abc import Mapping

from tradebot.api.models import Mover


def movers(
    prices: Mapping[str, float], references: Mapping[str, tuple[float | None, float]], top: int
) -> tuple[list[Mover], list[Mover], list[Mover]]:
    """Pure: every symbol's change against its reference, best first, plus the top gainers and losers."""
    rows = []
    for symbol, price in prices.items():
        reference, volume = references.get(symbol, (None, 0.0))
        reference = reference or price
        change = price - reference
        rows.append(
            Mover(
                symbol=symbol,
                price=price,
                reference_price=reference,
                change=change,
                change_percent=100.0 * change / reference if reference else 0.0,
                volume=volume,
            )
        )
    rows.sort(key=lambda m: m.change_percent, reverse=True)
    gainers = [m for m in rows if m.change_percent > 0][:top]
    losers = [m for m in reversed(rows) if m.change_percent < 0][:top]
    return rows, gainers, losers
