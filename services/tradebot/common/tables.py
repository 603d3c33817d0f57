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
BAR_TABLE_PREFIX = "price_bars_1m_"


def tick_table(source: str) -> str:
    return TICK_TABLE_PREFIX + validate_source_name(source)


def bar_table(source: str) -> str:
    return BAR_TABLE_PREFIX + validate_source_name(source)
