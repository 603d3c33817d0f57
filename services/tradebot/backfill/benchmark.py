"""`tradebot backfill benchmark`: the original's four pacing configurations, side by side.

Each configuration fetches the same symbols and range (without storing, so the
database does not mask the provider's pacing) and reports throughput and retries.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from tradebot.backfill.runner import Backfill, BackfillResult
from tradebot.common.settings import Settings
from tradebot.providers.history import Kind, history_source
from tradebot.providers.ratelimit import Pacer


@dataclass(frozen=True)
class PacingConfig:
    name: str
    batch_size: int
    concurrent_requests: int
    rate_limit_delay: float


CONFIGS = (
    PacingConfig("conservative", 10, 3, 0.5),
    PacingConfig("balanced", 15, 6, 0.3),
    PacingConfig("aggressive", 20, 8, 0.2),
    PacingConfig("high performance", 25, 10, 0.15),
)


async def run_config(
    config: PacingConfig,
    settings: Settings,
    source: str,
    symbols: Sequence[str],
    kinds: Sequence[Kind],
    start: datetime,
    end: datetime,
) -> BackfillResult:
    history = history_source(source, settings, Pacer(config.concurrent_requests, config.rate_limit_delay))
    try:
        return await Backfill(history, store=None).run(symbols, kinds, start, end, config.batch_size)
    finally:
        await history.http.aclose()
