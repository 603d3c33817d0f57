"""How a batch of messages maps onto tables (pure)."""

from __future__ import annotations

from datetime import UTC, datetime

from tradebot.common.models import Fill, PriceTick, Side
from tradebot.storage.writer import STATIC_TABLES, rows_by_table, tick_spec

NOW = datetime(2026, 1, 5, 15, 0, tzinfo=UTC)


def test_ticks_are_grouped_per_source_table():
    batch = [
        PriceTick(id="a", source="synthetic", symbol="AAPL", time=NOW, price=1.0),
        PriceTick(id="b", source="alpaca", symbol="AAPL", time=NOW, price=2.0),
        PriceTick(id="c", source="synthetic", symbol="MSFT", time=NOW, price=3.0, size=5),
        Fill(id="f", order_id="o", time=NOW, symbol="AAPL", side=Side.BUY, quantity=1, price=1, fee=1,
             slippage=0),
    ]  # fmt: skip
    rows = rows_by_table(batch, timescale=False)
    assert {spec.table: len(r) for spec, r in rows.items()} == {
        "price_ticks_synthetic": 2,
        "price_ticks_alpaca": 1,
        "fills": 1,
    }
    assert rows[tick_spec("synthetic", False)][1] == (NOW, "MSFT", 3.0, 5.0, None, None, 0.0, "c", "trade")
    assert rows[STATIC_TABLES[Fill]][0][0] == "f"


def test_rollup_only_without_timescale():
    assert "price_bars_1m_synthetic" in tick_spec("synthetic", False).insert_statement()
    assert "price_bars_1m_synthetic" not in tick_spec("synthetic", True).insert_statement()
