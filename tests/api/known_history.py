"""A known history: ticks on straight lines (so every bar is known in advance) and one trade."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import asyncpg

from tradebot.common.models import Fill, Order, OrderStatus, Position, PriceTick, Side, TradeSignal
from tradebot.storage.schema import ensure_schema, refresh_bars
from tradebot.storage.writer import BatchWriter

START = datetime(2026, 1, 5, 10, 0, tzinfo=UTC)
STEP = timedelta(seconds=30)
TICKS_PER_SYMBOL = 360  # three hours
SYMBOLS = {"AAPL": (100.0, 0.1), "MSFT": (200.0, -0.05)}  # start price, change per tick


def known_ticks() -> list[PriceTick]:
    """Prices that walk in straight lines, so every bar is known in advance."""
    return [
        PriceTick(
            id=f"{symbol}-{i:04d}",
            source="synthetic",
            symbol=symbol,
            time=START + i * STEP,
            price=round(base + i * slope, 4),
            size=10,
            bid=round(base + i * slope - 0.01, 4),
            ask=round(base + i * slope + 0.01, 4),
            volume=10.0 * (i + 1),
        )
        for symbol, (base, slope) in SYMBOLS.items()
        for i in range(TICKS_PER_SYMBOL)
    ]


def known_trades() -> list:
    signal = TradeSignal(
        id="sma:synthetic:AAPL-0100", time=START + 100 * STEP, strategy="sma_crossover", symbol="AAPL",
        side=Side.BUY, strength=1.0, reason="short SMA crossed above long SMA", price=110.0,
        source="synthetic", tick_id="AAPL-0100", tick_time=START + 100 * STEP,
    )  # fmt: skip
    order = Order(
        id="order-1", signal_id=signal.id, time=signal.time, strategy=signal.strategy, symbol="AAPL",
        side=Side.BUY, quantity=10, reference_price=110.0, status=OrderStatus.FILLED,
    )  # fmt: skip
    fill = Fill(
        id="fill-1", order_id="order-1", time=signal.time, symbol="AAPL", side=Side.BUY,
        quantity=10, price=110.05, fee=1.0, slippage=0.05,
    )  # fmt: skip
    position = Position(
        symbol="AAPL", quantity=10, average_price=110.05, realized_pnl=-1.0, market_price=110.05,
        unrealized_pnl=0.0, time=signal.time,
    )  # fmt: skip
    return [signal, order, fill, position]


async def write_known_history(database_url: str) -> None:
    conn = await asyncpg.connect(database_url)
    try:
        writer = BatchWriter(conn, await ensure_schema(conn, ("synthetic",)))
        await writer.write([*known_ticks(), *known_trades()])
        await conn.execute("ANALYZE")
    finally:
        await conn.close()


async def materialise_bars(database_url: str) -> None:
    """What TimescaleDB's refresh policies do in the background, now (nothing on plain PostgreSQL)."""
    conn = await asyncpg.connect(database_url)
    try:
        await refresh_bars(conn, "synthetic")
        await conn.execute("ANALYZE")
    finally:
        await conn.close()
