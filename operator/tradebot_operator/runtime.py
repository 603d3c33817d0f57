"""The operator's in-memory state, shared by its handlers through kopf's memo.

Nothing here is needed to be correct after a restart: kopf's resume handlers
re-queue every stack, the watches refill the cache of children, and the status
loop re-reads everything it reports.
"""

from __future__ import annotations

import asyncio
import copy
import itertools
from collections.abc import Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from redis.asyncio import Redis

from tradebot_operator import MANAGED_BY
from tradebot_operator.apply import ChildKey
from tradebot_operator.config import OperatorConfig
from tradebot_operator.health import Problem
from tradebot_operator.kube import Kube
from tradebot_operator.metrics import OperatorMetrics

StackKey = tuple[str, str]  # (namespace, name)
INSTANCE = "app.kubernetes.io/instance"


def slim(body: Mapping[str, Any]) -> dict[str, Any]:
    """A watched object without managedFields and kopf's annotations (most of its size)."""
    out = {k: copy.deepcopy(v) for k, v in body.items() if k != "metadata"}
    meta = {k: copy.deepcopy(v) for k, v in body["metadata"].items() if k != "managedFields"}
    out["metadata"] = meta
    return out


@dataclass
class Runtime:
    config: OperatorConfig
    kube: Kube
    metrics: OperatorMetrics = field(default_factory=OperatorMetrics)
    # The latest body of every watched stack (plain dicts), kept by an event handler.
    stacks: dict[StackKey, dict[str, Any]] = field(default_factory=dict)
    # Every child seen by the watches (slimmed), so reconciles and the status read no lists.
    children: dict[ChildKey, dict[str, Any]] = field(default_factory=dict)
    # The spec generation last reconciled, per stack: status.observedGeneration.
    reconciled: dict[StackKey, int] = field(default_factory=dict)
    # What the last reconcile could not do, per stack and child (ApplyFailed etc.), until it can.
    apply_errors: dict[StackKey, dict[str, Problem]] = field(default_factory=dict)
    # Generated database passwords by stack uid, so a Secret deleted by hand comes back the same.
    passwords: dict[str, str] = field(default_factory=dict)
    # Each stack's Redis password as last reconciled, for reading its heartbeats.
    redis_passwords: dict[StackKey, str] = field(default_factory=dict)
    # metadata.generation of each Deployment/StatefulSet as we last applied it.
    applied_generation: dict[ChildKey, int] = field(default_factory=dict)
    # The status last written per stack, to write only changes and post events on phase changes.
    written: dict[StackKey, dict[str, Any]] = field(default_factory=dict)
    written_at: dict[StackKey, float] = field(default_factory=dict)
    locks: dict[StackKey, asyncio.Lock] = field(default_factory=dict)
    redis: dict[str, Redis] = field(default_factory=dict)
    due: dict[StackKey, float] = field(default_factory=dict)
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    # Stacks waiting for a reconcile (each once), and the workers' own threads: reconciles
    # never wait behind status writes, nor status writes behind reconciles.
    # Urgent first (a spec changed, a child was deleted), then the resume/resync backlog.
    queue: asyncio.PriorityQueue[tuple[int, int, StackKey]] = field(default_factory=asyncio.PriorityQueue)
    queued: dict[StackKey, int] = field(default_factory=dict)
    _order: itertools.count[int] = field(default_factory=itertools.count)
    reconcile_pool: ThreadPoolExecutor = field(
        default_factory=lambda: ThreadPoolExecutor(4, thread_name_prefix="reconcile")
    )
    status_pool: ThreadPoolExecutor = field(
        default_factory=lambda: ThreadPoolExecutor(4, thread_name_prefix="status")
    )

    def lock(self, key: StackKey) -> asyncio.Lock:
        return self.locks.setdefault(key, asyncio.Lock())

    def enqueue(self, key: StackKey, urgent: bool = True) -> None:
        """Reconcile this stack soon (once, however often it is asked); `urgent` jumps the backlog."""
        priority = 0 if urgent else 1
        if key in self.stacks and self.queued.get(key, 2) > priority:
            self.queued[key] = priority
            self.queue.put_nowait((priority, next(self._order), key))

    async def next_queued(self) -> StackKey:
        """The next stack to reconcile (a stale entry of one re-queued as urgent is skipped)."""
        while True:
            priority, _, key = await self.queue.get()
            if self.queued.get(key) == priority:
                del self.queued[key]
                return key

    def poke(self, key: StackKey) -> None:
        """Refresh this stack's status now instead of at its next interval."""
        self.due[key] = 0.0
        self.wake.set()

    def stack_children(self, key: StackKey) -> Iterator[dict[str, Any]]:
        """Every cached child labelled as this stack's (owned or, like retained claims, only labelled)."""
        namespace, name = key
        for (_, ns, _), obj in list(self.children.items()):
            labels = obj["metadata"].get("labels") or {}
            if (
                ns == namespace
                and labels.get(INSTANCE) == name
                and labels.get("app.kubernetes.io/managed-by") == MANAGED_BY
            ):
                yield obj

    def redis_for(self, key: StackKey) -> Redis:
        namespace, name = key
        url = self.config.stack_redis_url(name, namespace, self.redis_passwords.get(key, ""))
        if url not in self.redis:
            timeout = self.config.redis_timeout
            self.redis[url] = Redis.from_url(url, socket_connect_timeout=timeout, socket_timeout=timeout)
        return self.redis[url]

    async def forget(self, key: StackKey) -> None:
        """A stack is gone: drop what we kept for it."""
        body = self.stacks.pop(key, None)
        for table in (
            self.reconciled,
            self.apply_errors,
            self.written,
            self.written_at,
            self.locks,
            self.due,
        ):
            table.pop(key, None)
        if body is not None:
            self.passwords.pop(body["metadata"].get("uid", ""), None)
        url = self.config.stack_redis_url(key[1], key[0], self.redis_passwords.pop(key, ""))
        client = self.redis.pop(url, None)
        still_used = (
            self.config.stack_redis_url(n, ns, self.redis_passwords.get((ns, n), "")) for ns, n in self.stacks
        )
        if client is not None and url not in still_used:
            await client.aclose()
        elif client is not None:
            self.redis[url] = client

    async def close(self) -> None:
        for client in self.redis.values():
            await client.aclose()
        self.redis.clear()
        self.reconcile_pool.shutdown(wait=False, cancel_futures=True)
        self.status_pool.shutdown(wait=False, cancel_futures=True)
        self.kube.close()
