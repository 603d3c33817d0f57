"""Equity snapshots: the live account, marked to the latest prices, stored every
EQUITY_SNAPSHOT_SECONDS (the equity and drawdown curve of the dashboard and GET /equity).

A snapshot's time is its interval's start, the table's key: storage replicas that
take the same snapshot store it once.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime

import asyncpg
from redis.asyncio import Redis

from tradebot.api.account import read_account
from tradebot.api.models import Account
from tradebot.common.tables import EQUITY_TABLE

INSERT_SNAPSHOT = f"""
INSERT INTO {EQUITY_TABLE} (time, equity, cash, realized_pnl, unrealized_pnl, fees_paid, open_positions)
VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (time) DO NOTHING
"""


def snapshot_time(now: float, interval: float) -> datetime:
    """Pure: the start of the interval `now` (epoch seconds) falls in."""
    return datetime.fromtimestamp(math.floor(now / interval) * interval, UTC)


def next_snapshot(now: float, interval: float) -> float:
    """Pure: when the next interval starts."""
    return (math.floor(now / interval) + 1) * interval


def snapshot_row(account: Account, at: datetime) -> tuple:
    return (
        at, account.equity, account.cash, account.realized_pnl, account.unrealized_pnl,
        account.fees_paid, len(account.positions),
    )  # fmt: skip


async def take_snapshot(
    conn: asyncpg.Connection, redis: Redis, starting_cash: float, now: float, interval: float
) -> None:
    account = await read_account(redis, starting_cash)
    await conn.execute(INSERT_SNAPSHOT, *snapshot_row(account, snapshot_time(now, interval)))
