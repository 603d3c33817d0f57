"""Pre-trade risk limits; each rejection says which limit and by how much."""

from __future__ import annotations

from dataclasses import dataclass

from tradebot.common.models import Side
from tradebot.common.settings import Settings
from tradebot.execution.portfolio import Portfolio


@dataclass(frozen=True)
class RiskLimits:
    max_position_per_symbol: float
    max_order_notional: float
    max_open_positions: int
    daily_loss_limit: float

    @classmethod
    def from_settings(cls, settings: Settings) -> RiskLimits:
        return cls(
            settings.max_position_per_symbol,
            settings.max_order_notional,
            settings.max_open_positions,
            settings.daily_loss_limit,
        )


def check_order(
    portfolio: Portfolio, symbol: str, side: Side, quantity: float, price: float, limits: RiskLimits
) -> str | None:
    """The reason an order must be rejected, or None when it may trade."""
    held = portfolio.quantity(symbol)
    if side is Side.SELL and held <= 0:
        return f"no {symbol} position to sell (long-only account)"
    if quantity <= 0:
        return "order quantity rounds to zero shares"
    if side is Side.SELL:
        return None
    notional = quantity * price
    if portfolio.day_pnl() <= -limits.daily_loss_limit:
        return (
            f"daily loss stop: day P&L {portfolio.day_pnl():.2f} is beyond "
            f"-{limits.daily_loss_limit:.2f}; only closing orders are accepted today"
        )
    if notional > limits.max_order_notional:
        return f"order notional {notional:.2f} exceeds max order notional {limits.max_order_notional:.2f}"
    if held + quantity > limits.max_position_per_symbol:
        return (
            f"position would be {held + quantity:g} shares, above max position per symbol "
            f"{limits.max_position_per_symbol:g}"
        )
    if held == 0 and len(portfolio.open_positions()) >= limits.max_open_positions:
        return (
            f"already {len(portfolio.open_positions())} open positions "
            f"(max open positions {limits.max_open_positions})"
        )
    if notional > portfolio.cash:
        return f"insufficient cash: order needs {notional:.2f}, cash is {portfolio.cash:.2f}"
    return None
