"""What a provider's REST history looks like to the backfill: pages of bars or trade ticks."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal, Protocol

from tradebot.common.models import PriceTick
from tradebot.common.settings import Settings
from tradebot.providers.http import MAX_ATTEMPTS, ProviderHTTP
from tradebot.providers.ratelimit import Pacer
from tradebot.providers.registry import DATA_SOURCES, history_sources, load

Kind = Literal["bars", "trades"]
KINDS: tuple[Kind, ...] = ("bars", "trades")
BAR_LENGTH = timedelta(minutes=1)


@dataclass(frozen=True, slots=True)
class Bar:
    """A provider's 1-minute bar, in the columns of the bar tables."""

    bucket: datetime
    symbol: str
    open: float
    high: float
    low: float
    close: float
    volume: float
    trades: int

    def record(self) -> tuple:
        last = self.bucket + BAR_LENGTH - timedelta(microseconds=1)
        return (self.bucket, self.symbol, self.open, self.high, self.low, self.close,
                self.volume, self.trades, self.bucket, last)  # fmt: skip


Row = Bar | PriceTick
Request = tuple[str, dict[str, Any] | None]


class HistorySource(Protocol):
    """One provider's REST history; `pages` yields rows oldest first within [start, end)."""

    name: str
    http: ProviderHTTP

    def pages(self, kind: Kind, symbol: str, start: datetime, end: datetime) -> AsyncIterator[list[Row]]: ...


async def paginate(
    http: ProviderHTTP,
    first: Request,
    rows_of: Callable[[Any], list[Row]],
    next_of: Callable[[Any], Request | None],
) -> AsyncIterator[list[Row]]:
    """Follow a provider's pagination (page token or next_url) until it has no next page."""
    request: Request | None = first
    while request is not None:
        body = await http.get_json(*request)
        yield rows_of(body)
        request = next_of(body)


def history_source(
    source: str, settings: Settings, pacer: Pacer, attempts: int = MAX_ATTEMPTS
) -> HistorySource:
    """The REST history of `source` (a registry source with `history`); `attempts` per request."""
    path = DATA_SOURCES[source].history if source in DATA_SOURCES else None
    if path is None:
        raise ValueError(f"no REST history for source {source!r}; choose {' or '.join(history_sources())}")
    history: HistorySource = load(path)(settings, pacer, attempts)
    return history


def credentials_problem(source: str, settings: Settings) -> str | None:
    """Which of the provider's variables are unset, in words an operator acts on; None when all are set."""
    names = DATA_SOURCES[source].credentials
    missing = [name for name in names if not getattr(settings, name.lower())]
    if not missing:
        return None
    needs = "needs both" if len(names) > 1 else "needs it"
    return f"{' and '.join(missing)} not set: the {source.capitalize()} feed {needs}"
