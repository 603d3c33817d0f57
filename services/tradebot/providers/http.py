"""One HTTP client for provider REST APIs: pacing, retries on 429/5xx, and plain errors.

The SDKs' REST clients retry 429 on a fixed wait and hide both the provider's
Retry-After and the number of retries, which the backfill must honour and report;
so historical requests go through this client instead.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from typing import Any

import httpx

from tradebot.providers.ratelimit import RETRY_STATUSES, Pacer, retry_delay

log = logging.getLogger(__name__)
MAX_ATTEMPTS = 5
RATE_LIMIT_PATIENCE = 300.0  # seconds of 429 waits one request accepts before giving up


class ProviderError(RuntimeError):
    """A provider answered with an error we cannot retry away."""

    def __init__(self, provider: str, status: int, answer: str) -> None:
        super().__init__(f"{provider} answered HTTP {status}: {answer}")
        self.provider, self.status, self.answer = provider, status, answer


class ProviderUnreachable(ProviderError):
    """The provider could not be reached at all (DNS, refused, timeouts) after every attempt."""

    def __init__(self, provider: str, base_url: str, reason: str, attempts: int) -> None:
        super().__init__(provider, 0, reason)
        self.args = (f"cannot reach {provider} at {base_url}: {reason} (tried {attempts} times)",)


def transport_reason(error: httpx.TransportError) -> str:
    """What went wrong on the wire, in words (httpx's own message is often empty)."""
    detail = str(error) or str(error.__cause__ or "") or "no answer"
    return f"{type(error).__name__}: {detail}"


class ProviderAuthError(ProviderError):
    """401/403: the credentials are missing, wrong or not entitled."""

    def __init__(self, provider: str, status: int, answer: str, variables: str) -> None:
        super().__init__(provider, status, answer)
        self.args = (f"{provider} rejected the credentials in {variables} (HTTP {status}: {answer})",)


def answer_text(response: httpx.Response) -> str:
    """The provider's own words: its JSON `message`/`error` field, else the body."""
    try:
        body = response.json()
    except ValueError:
        return response.text[:300] or response.reason_phrase
    if isinstance(body, dict):
        return str(body.get("message") or body.get("error") or body)[:300]
    return str(body)[:300]


class ProviderHTTP:
    """GETs JSON with pacing and retries; counts requests, retries and rate-limited answers."""

    def __init__(
        self,
        provider: str,
        base_url: str,
        headers: dict[str, str],
        credential_variables: str,
        pacer: Pacer,
        timeout: float = 30.0,
        attempts: int = MAX_ATTEMPTS,
    ) -> None:
        self.provider = provider
        self.base_url = base_url
        self.attempts = attempts
        self.credential_variables = credential_variables
        self.pacer = pacer
        self.stats: Counter[str] = Counter()
        self.client = httpx.AsyncClient(base_url=base_url, headers=headers, timeout=timeout)

    async def aclose(self) -> None:
        await self.client.aclose()

    async def get_json(self, url: str, params: dict[str, Any] | None = None) -> Any:
        """GET and decode; 429s are retried as long as the provider asks (up to RATE_LIMIT_PATIENCE s
        in all), other transient failures `attempts` times."""
        failures, limited, waited = 0, 0, 0.0
        while True:
            async with self.pacer:
                self.stats["requests"] += 1
                try:
                    response = await self.client.get(url, params=params)
                except httpx.TransportError as error:
                    failures += 1
                    reason = transport_reason(error)
                    if failures >= self.attempts:
                        raise ProviderUnreachable(self.provider, self.base_url, reason, failures) from None
                    wait = retry_delay({}, failures, time.time())
                    log.warning(
                        f"request to {self.provider} failed; retrying in {wait:.1f}s",
                        extra={"url": f"{self.base_url}{url}", "error": reason, "attempt": failures},
                    )
                    self.stats["retries"] += 1
                    self.pacer.hold(wait)
                    continue
            status = response.status_code
            if status == 200:
                return response.json()
            if status in (401, 403):
                raise ProviderAuthError(
                    self.provider, status, answer_text(response), self.credential_variables
                )
            if status == 429:
                limited += 1
                wait = retry_delay(response.headers, limited, time.time())
                waited += wait
                self.stats["rate_limited"] += 1
                if waited > RATE_LIMIT_PATIENCE:
                    raise ProviderError(self.provider, status, answer_text(response))
            elif status in RETRY_STATUSES and failures + 1 < self.attempts:
                failures += 1
                wait = retry_delay(response.headers, failures, time.time())
            else:
                raise ProviderError(self.provider, status, answer_text(response))
            self.stats["retries"] += 1
            log.info("provider asked us to slow down", extra={"status": status, "wait": wait})
            self.pacer.hold(wait)
