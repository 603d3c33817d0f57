"""The paper account as the API and dashboard show it, from the execution service's state.

The execution service keeps its `Portfolio` in Redis; here it is marked to the
latest prices and summarised. Pure, so the API and the dashboard agree.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime

from redis.asyncio import Redis

from tradebot.api.models import Account, Position
from tradebot.common import keys
from tradebot.execution.portfolio import Portfolio, load_portfolio


def account_summary(portfolio: Portfolio, prices: Mapping[str, float], now: datetime) -> Account:
    """Cash, equity and P&L of a portfolio marked to `prices` (a copy is marked, not the input)."""
    marked = portfolio.model_copy(deep=True)
    marked.mark(dict(prices))
    positions = [
        Position(
            symbol=symbol,
            quantity=holding.quantity,
            average_price=holding.average_price,
            realized_pnl=holding.realized_pnl,
            market_price=holding.market_price,
            unrealized_pnl=(holding.market_price - holding.average_price) * holding.quantity,
            time=now,
        )
        for symbol, holding in sorted(marked.holdings.items())
        if holding.quantity > 0
    ]
    unrealized = marked.unrealized_pnl()
    return Account(
        cash=marked.cash,
        equity=marked.equity(),
        realized_pnl=marked.realized_pnl,
        unrealized_pnl=unrealized,
        total_pnl=marked.realized_pnl + unrealized,
        day_pnl=marked.day_pnl(),
        fees_paid=marked.fees_paid,
        orders_filled=marked.orders_filled,
        orders_rejected=marked.orders_rejected,
        paused=marked.paused,
        positions=positions,
    )


async def read_account(redis: Redis, starting_cash: float) -> Account:
    """The live account from Redis: the stored portfolio (or a fresh one) at the latest prices."""
    portfolio = await load_portfolio(redis, starting_cash)
    return account_summary(portfolio, await keys.read_latest_prices(redis), datetime.now(UTC))
