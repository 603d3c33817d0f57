"""The operator's in-memory state, shared by its handlers through kopf's memo.

Nothing here is needed to be correct after a restart: kopf's resume handlers
re-apply every stack, and the status loop re-reads everything it reports.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

from redis.asyncio import Redis

from tradebot_operator.config import OperatorConfig
from tradebot_operator.health import Problem
from tradebot_operator.kube import Kube

StackKey = tuple[str, str]  # (namespace, name)


@dataclass
class Runtime:
    config: OperatorConfig
    kube: Kube
    # The latest body of every watched stack (plain dicts), kept by an event handler.
    stacks: dict[StackKey, dict[str, Any]] = field(default_factory=dict)
    # The spec generation last applied in full, per stack: status.observedGeneration.
    reconciled: dict[StackKey, int] = field(default_factory=dict)
    # Why the last apply failed, per stack, until one succeeds.
    apply_errors: dict[StackKey, Problem] = field(default_factory=dict)
    # Generated database passwords by stack uid, so a Secret deleted by hand comes back the same.
    passwords: dict[str, str] = field(default_factory=dict)
    # metadata.generation of each Deployment/StatefulSet as we last applied it (kind, ns, name).
    applied_generation: dict[tuple[str, str, str], int] = field(default_factory=dict)
    # The status last written per stack, to write only changes and post events on phase changes.
    written: dict[StackKey, dict[str, Any]] = field(default_factory=dict)
    locks: dict[StackKey, asyncio.Lock] = field(default_factory=dict)
    redis: dict[str, Redis] = field(default_factory=dict)
    due: dict[StackKey, float] = field(default_factory=dict)
    wake: asyncio.Event = field(default_factory=asyncio.Event)

    def lock(self, key: StackKey) -> asyncio.Lock:
        return self.locks.setdefault(key, asyncio.Lock())

    def poke(self, key: StackKey) -> None:
        """Refresh this stack's status now instead of at its next interval."""
        self.due[key] = 0.0
        self.wake.set()

    def redis_for(self, key: StackKey) -> Redis:
        namespace, name = key
        url = self.config.stack_redis_url(name, namespace)
        if url not in self.redis:
            timeout = self.config.redis_timeout
            self.redis[url] = Redis.from_url(url, socket_connect_timeout=timeout, socket_timeout=timeout)
        return self.redis[url]

    async def forget(self, key: StackKey) -> None:
        """A stack is gone: drop what we kept for it."""
        body = self.stacks.pop(key, None)
        for table in (self.reconciled, self.apply_errors, self.written, self.locks, self.due):
            table.pop(key, None)
        if body is not None:
            self.passwords.pop(body["metadata"].get("uid", ""), None)
        url = self.config.stack_redis_url(key[1], key[0])
        client = self.redis.pop(url, None)
        if client is not None and url not in (self.config.stack_redis_url(n, ns) for ns, n in self.stacks):
            await client.aclose()
        elif client is not None:
            self.redis[url] = client

    async def close(self) -> None:
        for client in self.redis.values():
            await client.aclose()
        self.redis.clear()
        self.kube.close()
