"""Rate-limit arithmetic (pure) and the pacing of requests (the original's RATE_LIMIT_DELAY).

Providers say when to come back in different ways: `Retry-After` (seconds or an
HTTP date), or `X-RateLimit-Reset` (epoch seconds) once `X-RateLimit-Remaining`
reaches 0. Without either, back off exponentially.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from email.utils import parsedate_to_datetime

RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
MAX_WAIT = 120.0


def header_wait(headers: Mapping[str, str], now: float) -> float | None:
    """Seconds the provider asked us to wait, from its headers; None when it did not say."""
    retry_after = headers.get("retry-after")
    if retry_after:
        try:
            return max(0.0, float(retry_after))
        except ValueError:
            try:
                return max(0.0, parsedate_to_datetime(retry_after).timestamp() - now)
            except (TypeError, ValueError):
                pass
    reset = headers.get("x-ratelimit-reset")
    if reset and headers.get("x-ratelimit-remaining", "0") == "0":
        try:
            return max(0.0, float(reset) - now)
        except ValueError:
            return None
    return None


def retry_delay(headers: Mapping[str, str], attempt: int, now: float, base: float = 0.5) -> float:
    """How long to wait before retry number `attempt` (1-based), capped at MAX_WAIT."""
    asked = header_wait(headers, now)
    if asked is not None:
        return min(MAX_WAIT, asked)
    return min(MAX_WAIT, base * 2 ** (attempt - 1))


class Pacer:
    """At most `concurrency` requests in flight, each slot resting `delay` s after its request.

    The steady rate is therefore at most concurrency / delay requests per second. A 429
    with a wait pauses every slot (`hold`), since the limit is per account, not per slot.
    """

    def __init__(self, concurrency: int, delay: float) -> None:
        self.delay = delay
        self._slots = asyncio.Semaphore(concurrency)
        self._resume_at = 0.0

    def hold(self, seconds: float) -> None:
        self._resume_at = max(self._resume_at, time.monotonic() + seconds)

    async def __aenter__(self) -> Pacer:
        await self._slots.acquire()
        while (wait := self._resume_at - time.monotonic()) > 0:  # noqa: ASYNC110 - a deadline, not an event
            await asyncio.sleep(wait)
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        try:
            if self.delay:
                await asyncio.sleep(self.delay)
        finally:
            self._slots.release()
