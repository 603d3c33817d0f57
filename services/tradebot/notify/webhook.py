"""Sending notifications to NOTIFY_WEBHOOK_URL: queued, rate-limited, retried, never in the way.

`offer` never waits: a full queue or an exhausted rate drops the notification and counts
it, and the next one sent says how many were dropped. One background task posts them,
retrying a failed post (connection error, timeout, 429 honouring Retry-After, 5xx) a few
times with backoff; a dead webhook costs its task time, never the caller's.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter

import httpx

from tradebot.common.backoff import Backoff
from tradebot.notify.messages import payload

log = logging.getLogger(__name__)
QUEUE_SIZE = 500
ATTEMPTS = 4
TIMEOUT_SECONDS = 5.0
MAX_RETRY_AFTER = 30.0


class RateLimit:
    """A token bucket: `per_minute` notifications, refilled continuously."""

    def __init__(self, per_minute: int, clock=time.monotonic) -> None:
        self.capacity = float(per_minute)
        self.tokens = float(per_minute)
        self.rate = per_minute / 60.0
        self.clock = clock
        self.at = clock()

    def take(self) -> bool:
        now = self.clock()
        self.tokens = min(self.capacity, self.tokens + (now - self.at) * self.rate)
        self.at = now
        if self.tokens >= 1:
            self.tokens -= 1
            return True
        return False


class WebhookNotifier:
    def __init__(self, url: str, per_minute: int, client: httpx.AsyncClient | None = None) -> None:
        self.url = url
        self.limit = RateLimit(per_minute)
        self.queue: asyncio.Queue[str] = asyncio.Queue(QUEUE_SIZE)
        self.client = client
        self.counters: Counter = Counter()
        self.dropped = 0

    def offer(self, text: str) -> None:
        """Queue a notification (returns at once; dropped and counted when over the limits)."""
        if not self.limit.take() or self.queue.full():
            self.dropped += 1
            self.counters["notifications_dropped"] += 1
            return
        if self.dropped:
            text += f"\n({self.dropped} more notifications were dropped by the rate limit)"
            self.dropped = 0
        self.queue.put_nowait(text)

    async def run(self) -> None:
        """Post queued notifications until cancelled."""
        async with httpx.AsyncClient(timeout=TIMEOUT_SECONDS) as own:
            client = self.client or own
            while True:
                text = await self.queue.get()
                await self._post(client, text)

    async def _post(self, client: httpx.AsyncClient, text: str) -> None:
        backoff = Backoff(initial=0.5, maximum=10.0)
        for attempt in range(1, ATTEMPTS + 1):
            wait: float | None = None
            try:
                answer = await client.post(self.url, json=payload(text))
                if answer.status_code < 300:
                    self.counters["notifications_sent"] += 1
                    return
                if answer.status_code != 429 and answer.status_code < 500:
                    log.warning("the webhook refused a notification", extra={"status": answer.status_code})
                    break
                wait = _retry_after(answer)
            except httpx.HTTPError as error:
                log.warning(
                    "the webhook is unreachable", extra={"error": type(error).__name__, "attempt": attempt}
                )
            if attempt < ATTEMPTS:
                self.counters["notifications_retried"] += 1
                await asyncio.sleep(wait if wait is not None else backoff.next_delay())
        self.counters["notifications_failed"] += 1


def _retry_after(answer: httpx.Response) -> float | None:
    """Seconds a 429 asks us to wait (Retry-After, or Discord's `retry_after` in the body)."""
    if answer.status_code != 429:
        return None
    header = answer.headers.get("retry-after")
    try:
        seconds = float(header) if header else float(answer.json().get("retry_after", 1.0))
    except ValueError:
        seconds = 1.0
    return min(MAX_RETRY_AFTER, max(0.0, seconds))
