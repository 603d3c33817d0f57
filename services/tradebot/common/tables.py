"""Table names, in one place. A name is only ever built from a validated source name."""

from __future__ import annotations

from tradebot.common.models import validate_source_name

SIGNALS_TABLE = "trade_signals"
ORDERS_TABLE = "orders"
FILLS_TABLE = "fills"
POSITIONS_TABLE = "positions"
AUDIT_TABLE = "audit"
EQUITY_TABLE = "equity_snapshots"
TICK_TABLE_PREFIX = "price_ticks_"
# Bar widths with a table of their own: 1m always (a continuous aggregate under TimescaleDB,
# else rolled up by storage); the wider ones only under TimescaleDB (hierarchical aggregates).
BAR_WIDTHS = ("1m", "5m", "15m", "1h", "1d")


def tick_table(source: str) -> str:
    return TICK_TABLE_PREFIX + validate_source_name(source)


def bar_table(source: str, width: str = "1m") -> str:
    if width not in BAR_WIDTHS:
        raise ValueError(f"no bar table for width {width!r}; widths: {', '.join(BAR_WIDTHS)}")
    return f"price_bars_{width}_{validate_source_name(source)}"
