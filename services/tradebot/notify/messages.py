"""What a notification says, and when: pure functions of the messages and health the dashboard sees.

Payloads carry the text as both `text` (Slack incoming webhooks) and `content` (Discord
webhooks, at most 2,000 characters), so one URL of either kind works.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

from tradebot.common.models import Fill, Message, Order, OrderStatus, Side

DISCORD_LIMIT = 2_000
QUIET_REJECTIONS = ("position to sell", "trading is paused")
"""Rejections that are not news: a strategy's sell with nothing held, an entry while paused."""


def payload(text: str) -> dict[str, Any]:
    return {"username": "TradeBot", "text": text, "content": text[:DISCORD_LIMIT]}


def describe(message: Message) -> str | None:
    """The notification of a stream message, if it deserves one: a fill, or a refused entry."""
    if isinstance(message, Fill):
        verb = "Bought" if message.side is Side.BUY else "Sold"
        return (
            f"{verb} {message.quantity:g} {message.symbol} @ {message.price:,.4g}"
            f" (fee ${message.fee:,.2f}, {message.time:%Y-%m-%d %H:%M:%S} UTC)"
        )
    if isinstance(message, Order) and message.status is OrderStatus.REJECTED:
        if any(quiet in message.reason for quiet in QUIET_REJECTIONS):
            return None
        return f"Risk rejection: {message.side.value} {message.symbol} ({message.strategy}): {message.reason}"
    return None


@dataclass
class ErrorWatch:
    """Notices services whose error count grew since the last look (not those already in error
    when first seen: the dashboard's card shows those)."""

    counts: dict[str, int] = field(default_factory=dict)

    def news(self, services: list[dict[str, Any]]) -> list[str]:
        said = []
        for service in services:
            name, count = service["service"], int(service.get("error_count") or 0)
            before = self.counts.get(name)
            self.counts[name] = count
            if before is not None and count > before:
                reason = service.get("last_error") or service.get("message") or "no reason given"
                said.append(f"Service error in {service['name']} ({count} so far): {reason}")
        return said


@dataclass
class DailySummary:
    """Once per UTC day, at the first look after midnight, the account as the day ended."""

    day: date | None = None
    fills: int = 0

    def count(self, message: Message) -> None:
        if isinstance(message, Fill):
            self.fills += 1

    def due(self, now: datetime, account: dict[str, Any]) -> str | None:
        today = now.date()
        if self.day is None:
            self.day = today
            return None
        if today == self.day:
            return None
        ended, self.day, fills, self.fills = self.day, today, self.fills, 0
        return (
            f"Daily summary {ended.isoformat()}: equity ${account['equity']:,.2f}, total P&L"
            f" ${account['total_pnl']:,.2f} (realised ${account['realized_pnl']:,.2f}, fees"
            f" ${account['fees_paid']:,.2f}), {fills} fills, {len(account['positions'])} open positions"
            + (", trading paused" if account.get("paused") else "")
        )
