"""kopf handlers: feed the reconcile queue, keep the cache of children, run the loops.

- create/update/resume of a stack: remember its body and queue it; workers reconcile
  queued stacks (each once at a time) in their own threads.
- child events (every kind we make, plus the Jobs of backups): update the cache; a child
  deleted, or changed by anyone but us, queues its stack; a workload's status change
  refreshes the stack's status at once.
- a resync loop queues every stack periodically (drift the watches could not see) and
  retries failed ones sooner.
- no deletion handler and no timer, so kopf adds no finalizer: owner references let
  the garbage collector remove everything when a stack is deleted.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import logging
from collections.abc import Mapping
from typing import Any

import kopf

from tradebot_operator import GROUP, KIND, MANAGED_BY, PLURAL, VERSION
from tradebot_operator.apply import WATCHED_KINDS, ChildKey
from tradebot_operator.kube import connection_info
from tradebot_operator.reconcile import GENERATION_KINDS, reconcile
from tradebot_operator.runtime import INSTANCE, Runtime, StackKey, slim
from tradebot_operator.status import status_loop

log = logging.getLogger(__name__)
registry = kopf.OperatorRegistry()
STACKS = (GROUP, VERSION, PLURAL)
WORKERS = 4


def _runtime(memo: Any) -> Runtime:
    runtime: Runtime = memo.runtime
    return runtime


# --------------------------------------------------------------------------- loops


async def reconcile_worker(runtime: Runtime) -> None:
    loop = asyncio.get_running_loop()
    while True:
        key = await runtime.next_queued()
        if key not in runtime.stacks:
            continue
        async with runtime.lock(key):
            try:
                outcome = await loop.run_in_executor(runtime.reconcile_pool, reconcile, runtime, key)
            except Exception:  # a bug must not stop the worker: the stack is retried
                log.exception("reconciling %s/%s failed", *key)
                loop.call_later(runtime.config.retry_interval, runtime.enqueue, key)
                continue
        runtime.reconciled[key] = outcome.generation
        if outcome.problems:
            runtime.apply_errors[key] = outcome.problems
            loop.call_later(runtime.config.retry_interval, runtime.enqueue, key)
        else:
            runtime.apply_errors.pop(key, None)
        runtime.poke(key)
        if outcome.applied or outcome.removed or outcome.problems:
            log.info("stack %s/%s generation %s: %s", *key, outcome.generation, outcome.summary())


async def resync_loop(runtime: Runtime) -> None:
    """Every stack again each resync interval: what no watch event told us is put right too."""
    while True:
        await asyncio.sleep(runtime.config.resync_interval)
        for key in list(runtime.stacks):
            runtime.enqueue(key, urgent=False)


@kopf.on.login(registry=registry)
def login(memo: Any, **_: Any) -> kopf.ConnectionInfo:
    return connection_info(_runtime(memo).kube.api.configuration)


@kopf.on.startup(registry=registry)
async def start_loops(memo: Any, **_: Any) -> None:
    runtime = _runtime(memo)
    memo.tasks = [
        asyncio.create_task(status_loop(runtime), name="tradebot-status"),
        asyncio.create_task(resync_loop(runtime), name="tradebot-resync"),
        *(
            asyncio.create_task(reconcile_worker(runtime), name=f"tradebot-reconcile-{i}")
            for i in range(WORKERS)
        ),
    ]


@kopf.on.cleanup(registry=registry)
async def stop_loops(memo: Any, **_: Any) -> None:
    for task in getattr(memo, "tasks", []):
        task.cancel()
    for task in getattr(memo, "tasks", []):
        with contextlib.suppress(asyncio.CancelledError):
            await task
    await _runtime(memo).close()


# --------------------------------------------------------------------------- stacks


def _snapshot(body: Mapping[str, Any]) -> dict[str, Any]:
    return copy.deepcopy({k: body[k] for k in ("metadata", "spec", "status") if k in body})


@kopf.on.event(*STACKS, registry=registry)
async def track_stack(type: str, body: Any, meta: Any, memo: Any, **_: Any) -> None:
    """Keep the latest body of every stack for the workers and the status loop."""
    runtime = _runtime(memo)
    key: StackKey = (meta["namespace"], meta["name"])
    if type == "DELETED":
        await runtime.forget(key)
    else:
        runtime.stacks[key] = _snapshot(body)


@kopf.on.create(*STACKS, registry=registry)
@kopf.on.update(*STACKS, registry=registry)
async def queue_stack(body: Any, meta: Any, memo: Any, **_: Any) -> None:
    runtime = _runtime(memo)
    key: StackKey = (meta["namespace"], meta["name"])
    runtime.stacks[key] = _snapshot(body)
    runtime.enqueue(key)


@kopf.on.resume(*STACKS, registry=registry)
async def queue_resumed(body: Any, meta: Any, memo: Any, **_: Any) -> None:
    """After a start or a takeover every stack is checked, behind the changes people are waiting for."""
    runtime = _runtime(memo)
    key: StackKey = (meta["namespace"], meta["name"])
    runtime.stacks[key] = _snapshot(body)
    runtime.enqueue(key, urgent=False)


# --------------------------------------------------------------------------- children


def _controller(meta: Mapping[str, Any]) -> Mapping[str, Any] | None:
    for ref in meta.get("ownerReferences") or ():
        if ref.get("kind") == KIND and ref.get("controller") and ref.get("apiVersion", "").startswith(GROUP):
            return dict(ref)
    return None


def owning_stack(runtime: Runtime, meta: Mapping[str, Any]) -> StackKey | None:
    """The stack a child belongs to: its controller reference, else (claims, Jobs) its instance label."""
    owner = _controller(meta)
    name = owner["name"] if owner else (meta.get("labels") or {}).get(INSTANCE)
    if not name:
        return None
    key: StackKey = (meta["namespace"], name)
    body = runtime.stacks.get(key)
    if body is None or (owner is not None and body["metadata"].get("uid") != owner["uid"]):
        return None
    return key


async def watch_child(type: str | None, body: Any, memo: Any, **_: Any) -> None:
    """A child changed or vanished: cache it; queue its stack unless the change was ours."""
    runtime = _runtime(memo)
    meta, kind = body["metadata"], body.get("kind", "")
    child: ChildKey = (kind, meta["namespace"], meta["name"])
    if type == "DELETED":
        runtime.children.pop(child, None)
    else:
        runtime.children[child] = slim(body)
    key = owning_stack(runtime, meta)
    if type is None or key is None or key not in runtime.reconciled:
        return  # the initial listing (resume queues every stack), or not ours
    seen = runtime.applied_generation.get(child)
    if kind == "Job" or (type != "DELETED" and kind in GENERATION_KINDS and seen == meta.get("generation")):
        runtime.poke(key)  # a status change (pods ready, a backup done): the stack's status follows now
        return
    runtime.poke(key)
    runtime.enqueue(key)


for _kind, (_api_version, _plural) in WATCHED_KINDS.items():
    kopf.on.event(
        _api_version, _plural, labels={"app.kubernetes.io/managed-by": MANAGED_BY}, registry=registry
    )(watch_child)
