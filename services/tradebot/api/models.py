"""Response models of the history API: they make its OpenAPI document complete."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, Field

from tradebot.common.health import HealthState


class Interval(StrEnum):
    """Bar widths the API serves; each is a re-bucketing of the 1-minute bars."""

    M1 = "1m"
    M5 = "5m"
    M15 = "15m"
    H1 = "1h"
    D1 = "1d"


class Problem(BaseModel):
    """Every error: what was wrong, in words a caller can act on."""

    detail: str


class ApiHealth(BaseModel):
    status: str = Field(description="'ok' when PostgreSQL and Redis answer, else 'degraded'")
    database: bool
    redis: bool
    timescale: bool = Field(description="whether the TimescaleDB extension is enabled")
    backend: str = Field(
        description="what the database runs on: 'TimescaleDB 2.29.2 on PostgreSQL 18.6' or 'PostgreSQL 18.6'"
    )


class SourceStats(BaseModel):
    source: str
    tick_table: str
    bar_table: str | None
    approximate_ticks: int = Field(description="planner estimate; exact counts are too slow on big tables")
    approximate_bars: int
    symbols: int
    first_tick: datetime | None
    last_tick: datetime | None
    total_bytes: int


class SymbolList(BaseModel):
    source: str
    symbols: list[str]


class Tick(BaseModel):
    time: datetime
    symbol: str
    price: float
    size: float
    bid: float | None
    ask: float | None
    volume: float
    id: str


class TickPage(BaseModel):
    source: str
    symbol: str
    ticks: list[Tick]
    next_cursor: str | None = Field(description="pass as `cursor` to get the next page; null at the end")


class Bar(BaseModel):
    time: datetime = Field(description="start of the bucket")
    open: float
    high: float
    low: float
    close: float
    volume: float
    trades: int


class BarSeries(BaseModel):
    source: str
    symbol: str
    interval: Interval
    start: datetime
    end: datetime
    bars: list[Bar]


class LatestPrice(BaseModel):
    symbol: str
    time: datetime
    price: float
    bid: float | None
    ask: float | None
    volume: float


class LatestPrices(BaseModel):
    source: str
    prices: list[LatestPrice]


class Mover(BaseModel):
    symbol: str
    price: float
    reference_price: float = Field(description="open of the first 1-minute bar of the last 24 hours")
    change: float
    change_percent: float
    volume: float = Field(description="volume traded in the last 24 hours")


class MarketSummary(BaseModel):
    source: str
    symbols: list[Mover] = Field(description="every symbol, largest gain first")
    gainers: list[Mover]
    losers: list[Mover]


class Signal(BaseModel):
    id: str
    time: datetime
    strategy: str
    symbol: str
    side: str
    strength: float
    reason: str
    price: float
    source: str


class Order(BaseModel):
    id: str
    signal_id: str
    time: datetime
    strategy: str
    symbol: str
    side: str
    quantity: float
    reference_price: float
    status: str
    reason: str


class Fill(BaseModel):
    id: str
    order_id: str
    time: datetime
    symbol: str
    side: str
    quantity: float
    price: float
    fee: float
    slippage: float


class Position(BaseModel):
    symbol: str
    quantity: float
    average_price: float
    realized_pnl: float
    market_price: float
    unrealized_pnl: float
    time: datetime


class Account(BaseModel):
    """The paper account and its P&L, marked to the latest prices."""

    cash: float
    equity: float
    realized_pnl: float
    unrealized_pnl: float
    total_pnl: float
    day_pnl: float
    fees_paid: float
    orders_filled: int
    orders_rejected: int
    paused: bool = Field(False, description="an operator paused trading: no new positions")
    positions: list[Position]


class ServiceStatus(BaseModel):
    service: str
    name: str = Field(description="as people read it, e.g. 'alpaca market data'")
    state: HealthState
    heartbeat_age: float | None = Field(description="seconds since the last heartbeat; null if missing")
    error_count: int
    status: str | None
    message: str | None = Field(
        None, description="what the service says of its state, e.g. a provider's answer"
    )
    last_error: str | None = Field(None, description="the reason of the newest error it counted")
    last_error_at: datetime | None = Field(None, description="when that error was counted")
    active_market_data: bool = Field(description="the market-data service of this stack's DATA_SOURCE")


class EquityPoint(BaseModel):
    """One equity snapshot (stored every EQUITY_SNAPSHOT_SECONDS) with its drawdown from the peak."""

    time: datetime
    equity: float
    cash: float
    realized_pnl: float
    unrealized_pnl: float
    fees_paid: float
    open_positions: int
    drawdown_pct: float = Field(description="below the highest equity so far in the answer, in %")


class ClosedTrade(BaseModel):
    """A position from its entry fill to the fill that closed it."""

    symbol: str
    strategy: str
    entry_time: datetime
    entry_price: float
    exit_time: datetime
    exit_price: float
    quantity: float
    pnl: float = Field(description="after the fees of both fills")
    fees: float
    holding_seconds: float
    exit_reason: str = Field(
        description="sell signal, stop-loss, take-profit, trailing-stop, closed by operator..."
    )


class PerformanceRow(BaseModel):
    name: str = Field(description="the symbol or strategy")
    trades: int
    wins: int
    win_rate_pct: float | None
    pnl: float
    fees: float
    profit_factor: float | None = Field(description="gross profit / gross loss; null without a loss")
    average_pnl: float


class Performance(BaseModel):
    trades: int
    pnl: float
    by_symbol: list[PerformanceRow]
    by_strategy: list[PerformanceRow]


class GroupHealth(BaseModel):
    group: str
    consumers: int
    pending: int = Field(description="delivered to a consumer, not yet acknowledged")
    lag: int | None = Field(description="entries not yet delivered to the group (Redis 7; null before)")
    lag_ms: int = Field(description="how far behind the newest entry the group's reads are, in ms")


class StreamHealth(BaseModel):
    stream: str
    length: int
    dead_letters: int = Field(description="entries set aside in <stream>:dead, with their reasons")
    groups: list[GroupHealth]


class StrategyInfo(BaseModel):
    name: str
    summary: str
    input: str
    params: dict[str, Any]
    overlays: list[str] = Field(description="readings in price units, drawn over the chart")


class StrategyReadings(BaseModel):
    symbol: str
    time: float = Field(description="when the strategy published them (epoch seconds)")
    strategies: dict[str, Any] = Field(description="strategy -> {values: {indicator: value}, last_signal}")


class ReadingsPoint(BaseModel):
    time: float = Field(description="epoch seconds")
    strategies: dict[str, dict[str, float | None]] = Field(description="strategy -> {indicator: value}")
