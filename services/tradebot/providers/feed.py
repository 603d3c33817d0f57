"""What a provider's live feed looks like to the market-data service that runs it.

A `Feed` connects, authenticates, subscribes and hands each event to its
`FeedEvents` until the connection ends; reconnects, silence, gap fills and
publishing are the service's (tradebot.market_data.provider_service), the same
for every provider.
"""

from __future__ import annotations

from typing import Protocol

from tradebot.common.models import PriceTick


class FeedRejected(Exception):
    """The provider refused us (credentials, entitlement, symbol or connection limit):
    retrying soon won't help, so the service reports it and waits PROVIDER_AUTH_RETRY."""


class FeedEvents(Protocol):
    """Where a feed delivers what its connection says."""

    def tick(self, tick: PriceTick) -> None:
        """One trade, quote or bar."""

    def live(self) -> None:
        """The provider acknowledged the subscription: the feed is live."""

    def malformed(self, reason: str) -> None:
        """A frame that could not be read; the feed skipped it and goes on."""


class Feed(Protocol):
    """One provider's live market data; built from Settings by the registry's `feed` path."""

    async def stream(self, symbols: list[str], events: FeedEvents) -> None:
        """Connect, authenticate and subscribe; deliver events until the connection ends.

        Raises FeedRejected when the provider refuses us; any other end is a reconnect."""
