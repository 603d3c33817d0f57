"""The paper broker: decides what one signal does to the account. Pure."""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime

from tradebot.common.models import Fill, Order, OrderStatus, Position, Side, TradeSignal
from tradebot.execution.portfolio import Portfolio
from tradebot.execution.risk import RiskLimits, check_order


@dataclass(frozen=True)
class TradingCosts:
    slippage_bps: float
    fee_per_share: float
    min_fee: float

    def fill_price(self, side: Side, reference: float) -> float:
        """Market orders pay the slippage: buys fill higher, sells lower."""
        direction = 1 if side is Side.BUY else -1
        return round(reference * (1 + direction * self.slippage_bps / 10_000), 6)

    def fee(self, quantity: float) -> float:
        return round(max(self.min_fee, self.fee_per_share * quantity), 6)


@dataclass(frozen=True)
class Execution:
    order: Order
    fill: Fill | None
    position: Position | None


def order_quantity(signal: TradeSignal, base_quantity: float, held: float) -> float:
    """Whole shares scaled by signal strength; a sell never exceeds the holding."""
    wanted = max(1.0, math.floor(base_quantity * max(signal.strength, 0.1)))
    return min(wanted, held) if signal.side is Side.SELL else wanted


def execute_signal(
    portfolio: Portfolio,
    signal: TradeSignal,
    base_quantity: float,
    limits: RiskLimits,
    costs: TradingCosts,
    now: datetime,
) -> Execution:
    """Turn a signal into an order (filled or rejected with a reason); books fills on `portfolio`."""
    portfolio.mark({signal.symbol: signal.price})
    portfolio.roll_day(now)
    quantity = order_quantity(signal, base_quantity, portfolio.quantity(signal.symbol))
    price = costs.fill_price(signal.side, signal.price)
    rejection = check_order(portfolio, signal.symbol, signal.side, quantity, price, limits)
    order_id = f"order:{signal.id}"
    order = Order(
        id=order_id,
        signal_id=signal.id,
        time=now,
        strategy=signal.strategy,
        symbol=signal.symbol,
        side=signal.side,
        quantity=quantity,
        reference_price=signal.price,
        status=OrderStatus.REJECTED if rejection else OrderStatus.FILLED,
        reason=rejection or "",
    )
    if rejection:
        portfolio.orders_rejected += 1
        return Execution(order, None, None)
    fill = Fill(
        id=f"fill:{signal.id}",
        order_id=order_id,
        time=now,
        symbol=signal.symbol,
        side=signal.side,
        quantity=quantity,
        price=price,
        fee=costs.fee(quantity),
        slippage=round((price - signal.price) * quantity, 6),
    )
    portfolio.orders_filled += 1
    return Execution(order, fill, portfolio.apply_fill(fill))
