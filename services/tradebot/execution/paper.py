"""The paper broker: what signals and trades do to the account. Pure.

The live execution service and a backtest drive the same broker with the same
events, so they trade the same way:

* `accept(signal)` queues the signal's market order (or rejects it: a buy weaker
  than MIN_SIGNAL_STRENGTH).
* `on_tick(tick)` runs on every tick of the account's symbols, in stream order:
  first the exits of an open position (stop-loss, take-profit, trailing stop) on
  a trade, then the queued orders. An order fills at the first trade *after* the
  tick its signal came from — never at the signal's own price — sized and checked
  against the risk limits at that moment. Each exit is an order with its reason.

Long only, one position per symbol: the first buy opens it (sized by `Sizing`),
a sell from the strategy that opened it (or an exit) closes all of it. Buys within
COOLDOWN_SECONDS of the symbol's last fill are refused.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import datetime

from tradebot.common.models import Fill, Order, OrderStatus, Position, PriceTick, Side, TradeSignal
from tradebot.common.settings import Settings
from tradebot.execution.exits import ExitRules
from tradebot.execution.portfolio import Holding, PendingOrder, Portfolio
from tradebot.execution.risk import RiskLimits, check_order
from tradebot.execution.sizing import Sizing


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
    fill: Fill | None = None
    position: Position | None = None
    traceparent: str | None = None
    """The trace of the signal behind it (so tick, signal, order and fill are one trace)."""


@dataclass(frozen=True)
class PaperBroker:
    """Costs, risk limits, sizing, exits and signal filters: everything a decision depends on."""

    costs: TradingCosts
    limits: RiskLimits
    sizing: Sizing = field(default_factory=Sizing)
    exits: ExitRules = field(default_factory=ExitRules)
    min_signal_strength: float = 0.0
    cooldown_seconds: float = 0.0

    @classmethod
    def from_settings(cls, settings: Settings) -> PaperBroker:
        s = settings
        return cls(
            costs=TradingCosts(s.slippage_bps, s.fee_per_share, s.min_fee),
            limits=RiskLimits.from_settings(s),
            sizing=Sizing(
                s.sizing, s.order_quantity, s.order_notional, s.order_equity_pct, s.risk_per_trade_pct
            ),
            exits=ExitRules(s.stop_loss_pct, s.stop_loss_atr, s.take_profit_pct, s.trailing_stop_pct),
            min_signal_strength=s.min_signal_strength,
            cooldown_seconds=s.cooldown_seconds,
        )

    # ------------------------------------------------------------------ signals
    def refusal(self, signal: TradeSignal) -> str | None:
        """Why a signal is refused outright, before any order is sized (the same for every venue)."""
        if signal.side is Side.BUY and signal.strength < self.min_signal_strength:
            floor = self.min_signal_strength
            return f"signal strength {signal.strength:g} is below MIN_SIGNAL_STRENGTH {floor:g}"
        return None

    def accept(
        self, portfolio: Portfolio, signal: TradeSignal, traceparent: str | None = None
    ) -> Execution | None:
        """Queue the signal's order; a rejected order instead when the signal is refused outright."""
        reason = self.refusal(signal)
        if reason is not None:
            portfolio.orders_rejected += 1
            return Execution(self.order(signal.id, signal.strategy, signal.symbol, signal.side, 0.0,
                                         signal.price, signal.time, reason, OrderStatus.REJECTED),
                             traceparent=traceparent)  # fmt: skip
        portfolio.pending.setdefault(signal.symbol, []).append(PendingOrder.of(signal, traceparent))
        return None

    # ------------------------------------------------------------------ ticks
    def wants(self, portfolio: Portfolio, symbol: str) -> bool:
        """Whether a tick of `symbol` can change anything (the cheap test for every tick)."""
        if symbol in portfolio.pending:
            return True
        holding = portfolio.holdings.get(symbol)
        return holding is not None and holding.quantity > 0

    def on_tick(self, portfolio: Portfolio, tick: PriceTick) -> list[Execution]:
        """Exits, then queued orders, for one tick of the account's symbols."""
        if not self.wants(portfolio, tick.symbol):
            return []
        results: list[Execution] = []
        is_trade = tick.type == "trade"
        holding = portfolio.holdings.get(tick.symbol)
        if is_trade and holding is not None and holding.quantity > 0:
            holding.market_price = tick.price
            reason = self.exits.check(holding, tick.price)
            if reason is not None:
                portfolio.roll_day(tick.time)
                results.append(self._exit(portfolio, holding, tick, reason))
        queue = portfolio.pending.get(tick.symbol)
        if queue:
            waiting = []
            for order in queue:
                if order.armed or tick.time > order.tick_time:
                    if is_trade:
                        results.append(self._fill(portfolio, order, tick))
                        continue
                    order.armed = True
                elif tick.id == order.tick_id:
                    order.armed = True
                waiting.append(order)
            if waiting:
                portfolio.pending[tick.symbol] = waiting
            else:
                del portfolio.pending[tick.symbol]
        return results

    # ------------------------------------------------------------------ decisions
    def size(
        self, portfolio: Portfolio, pending: PendingOrder, price: float, now: datetime
    ) -> tuple[float, str | None]:
        """Shares the order trades at `price` now, or why it must not trade: ownership of the
        position, sizing, cooldown, risk limits and cash (the same for every venue)."""
        symbol = pending.symbol
        holding = portfolio.holdings.get(symbol)
        held = holding.quantity if holding is not None else 0.0
        if pending.side is Side.SELL:
            if held <= 0:
                return 0.0, f"no {symbol} position to sell (long-only account)"
            if holding is not None and holding.strategy and holding.strategy != pending.strategy:
                return 0.0, f"the {symbol} position belongs to {holding.strategy}, not {pending.strategy}"
            return held, None
        quantity, rejection = self._entry_size(portfolio, holding, pending, price, now)
        if rejection is None:
            rejection = check_order(portfolio, symbol, Side.BUY, quantity, price, self.limits)
        return quantity, rejection

    def _fill(self, portfolio: Portfolio, pending: PendingOrder, tick: PriceTick) -> Execution:
        portfolio.roll_day(tick.time)
        portfolio.mark({tick.symbol: tick.price})
        price = self.costs.fill_price(pending.side, tick.price)
        quantity, rejection = self.size(portfolio, pending, price, tick.time)
        order = self.order(
            pending.signal_id, pending.strategy, tick.symbol, pending.side, quantity,
            pending.reference_price, tick.time, rejection or pending.reason,
            OrderStatus.REJECTED if rejection else OrderStatus.FILLED,
        )  # fmt: skip
        if rejection:
            portfolio.orders_rejected += 1
            return Execution(order, traceparent=pending.traceparent)
        fill, position = self._book(
            portfolio, pending.signal_id, order, price, pending.reference_price, tick.time
        )
        if pending.side is Side.BUY:
            opened = portfolio.holdings[tick.symbol]
            opened.strategy, opened.entry_signal = pending.strategy, pending.signal_id
            self.exits.arm(opened, fill.price, pending.atr)
        return Execution(order, fill, position, pending.traceparent)

    def _entry_size(
        self,
        portfolio: Portfolio,
        holding: Holding | None,
        pending: PendingOrder,
        price: float,
        now: datetime,
    ) -> tuple[float, str | None]:
        symbol = pending.symbol
        if portfolio.paused:
            return 0.0, "trading is paused by an operator (no new positions until resumed)"
        if holding is not None and holding.quantity > 0:
            return 0.0, f"already long {holding.quantity:g} {symbol} (one position per symbol)"
        last = holding.last_fill_time if holding is not None else None
        if last is not None and (now - last).total_seconds() < self.cooldown_seconds:
            waited = (now - last).total_seconds()
            return (
                0.0,
                f"{symbol} cooldown: last fill {waited:.0f}s ago, "
                f"COOLDOWN_SECONDS is {self.cooldown_seconds:g}",
            )
        wanted, why_none = self.sizing.shares(
            price, portfolio.equity(), self.exits.stop_distance(price, pending.atr)
        )
        if why_none:
            return 0.0, why_none
        cap = min(
            math.floor(self.limits.max_order_notional / price),
            math.floor(self.limits.max_position_per_symbol),
            math.floor(max(0.0, portfolio.cash - self.costs.fee(wanted)) / price),
        )
        quantity = float(min(wanted, cap))
        if quantity < 1:
            return 0.0, (
                f"order rounds to zero shares ({self.sizing.mode} sizing wants {wanted:g}; "
                f"the risk limits and cash allow {max(cap, 0):g} at {price:g})"
            )
        return quantity, None

    def _exit(self, portfolio: Portfolio, holding: Holding, tick: PriceTick, reason: str) -> Execution:
        exit_id = f"exit:{holding.entry_signal or tick.symbol}"
        price = self.costs.fill_price(Side.SELL, tick.price)
        strategy, quantity = holding.strategy or "exit", holding.quantity
        order = self.order(
            exit_id,
            strategy,
            tick.symbol,
            Side.SELL,
            quantity,
            tick.price,
            tick.time,
            reason,
            OrderStatus.FILLED,
        )
        fill, position = self._book(portfolio, exit_id, order, price, tick.price, tick.time)
        return Execution(order, fill, position)

    def _book(
        self, portfolio: Portfolio, key: str, order: Order, price: float, reference: float, now: datetime
    ) -> tuple[Fill, Position]:
        fill = Fill(
            id=f"fill:{key}",
            order_id=order.id,
            time=now,
            symbol=order.symbol,
            side=order.side,
            quantity=order.quantity,
            price=price,
            fee=self.costs.fee(order.quantity),
            slippage=round((price - reference) * order.quantity, 6),
        )
        portfolio.orders_filled += 1
        return fill, portfolio.apply_fill(fill)

    @staticmethod
    def order(
        key: str,
        strategy: str,
        symbol: str,
        side: Side,
        quantity: float,
        reference: float,
        now: datetime,
        reason: str,
        status: OrderStatus,
    ) -> Order:
        """The order of signal (or exit) `key`. A rejected order says why; a filled one is silent,
        except an exit, which says what triggered it."""
        return Order(
            id=f"order:{key}",
            signal_id=key,
            time=now,
            strategy=strategy,
            symbol=symbol,
            side=side,
            quantity=quantity,
            reference_price=reference,
            status=status,
            reason=reason,
        )
