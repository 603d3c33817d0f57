"""kopf handlers of Backtests: remember each one, start its Job, and keep its status.

One loop (like the stacks' status loop) looks at every unfinished Backtest each health
interval, or at once when one changes: it starts the Job when the stack is there, reads
the results from the stack's database and writes the status when it changed. No
create/delete handlers and no timers, so kopf adds no finalizer: the Job goes with its
Backtest by owner reference, the rows stay in the table.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import asyncpg
import kopf

from tradebot_operator import GROUP, VERSION
from tradebot_operator.apply import apply
from tradebot_operator.backtest import PLURAL
from tradebot_operator.backtest.job import backtest_job, run_id
from tradebot_operator.backtest.results import Result, backtest_status, read_results
from tradebot_operator.backtest.spec import parse_backtest
from tradebot_operator.builders.common import Stack
from tradebot_operator.handlers import registry
from tradebot_operator.health import merge_conditions
from tradebot_operator.kube import KubeError
from tradebot_operator.reconcile import password
from tradebot_operator.runtime import Runtime
from tradebot_operator.spec import InvalidSpec
from tradebot_operator.status import write_status

log = logging.getLogger(__name__)
BACKTESTS = (GROUP, VERSION, PLURAL)
FINISHED = ("Succeeded", "Failed")
Key = tuple[str, str]


@dataclass
class Backtests:
    bodies: dict[Key, dict[str, Any]] = field(default_factory=dict)
    written: dict[Key, dict[str, Any]] = field(default_factory=dict)
    wake: asyncio.Event = field(default_factory=asyncio.Event)


def _state(memo: Any) -> Backtests:
    state: Backtests = memo.backtests
    return state


@kopf.on.startup(registry=registry)
async def start_backtests(memo: Any, **_: Any) -> None:
    memo.backtests = Backtests()
    memo.backtest_loop = asyncio.create_task(backtest_loop(memo.runtime, memo.backtests), name="backtests")


@kopf.on.cleanup(registry=registry)
async def stop_backtests(memo: Any, **_: Any) -> None:
    task = getattr(memo, "backtest_loop", None)
    if task is not None:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


@kopf.on.event(*BACKTESTS, registry=registry)
async def track_backtest(type: str, body: Any, meta: Any, memo: Any, **_: Any) -> None:
    state = _state(memo)
    key: Key = (meta["namespace"], meta["name"])
    if type == "DELETED":
        state.bodies.pop(key, None)
        state.written.pop(key, None)
        return
    state.bodies[key] = {k: dict(body[k]) for k in ("metadata", "spec", "status") if k in body}
    state.wake.set()


async def backtest_loop(runtime: Runtime, state: Backtests) -> None:
    while True:
        state.wake.clear()
        for key in list(state.bodies):
            try:
                await refresh(runtime, state, key)
            except Exception:  # one Backtest's failure must not stop the others
                log.exception("Backtest %s/%s could not be refreshed", *key)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(state.wake.wait(), timeout=runtime.config.health_interval)


async def _results(runtime: Runtime, stack: Stack, run: str) -> list[Result] | None:
    loop = asyncio.get_running_loop()
    secret = await loop.run_in_executor(runtime.status_pool, password, runtime, stack)
    url = runtime.config.stack_database_url(stack.name, stack.namespace, secret)
    try:
        return await read_results(url, run)
    except (OSError, TimeoutError, asyncpg.PostgresError) as error:
        log.info("backtest results of %s unreadable: %s", run, error)
        return None


async def observe(runtime: Runtime, body: Mapping[str, Any]) -> dict[str, Any]:
    """Start the Job if it is not there, and say how it goes."""
    meta = body["metadata"]
    namespace, name = meta["namespace"], meta["name"]
    try:
        spec = parse_backtest(body.get("spec"))
    except InvalidSpec as error:
        return backtest_status([{}], [], None, "sharpe", ("InvalidSpec", str(error)))
    sets = spec.parameter_sets()
    job = runtime.children.get(("Job", namespace, name))
    ours = job is not None and any(
        o.get("uid") == meta["uid"] for o in job["metadata"].get("ownerReferences") or ()
    )
    stack_key = (namespace, spec.stack_ref.name)
    stack_body = runtime.stacks.get(stack_key)
    if stack_body is None:
        problem = ("StackNotFound", f"TradingStack {spec.stack_ref.name} not found in namespace {namespace}")
        return backtest_status(sets, [], job if ours else None, spec.rank, problem)
    try:
        stack = Stack.from_body(stack_body)
    except InvalidSpec as error:
        problem = ("StackInvalid", f"TradingStack {spec.stack_ref.name}: {error}")
        return backtest_status(sets, [], job if ours else None, spec.rank, problem)
    if job is not None and not ours:
        problem = ("JobNameTaken", f"a Job {name} that is not this Backtest's exists; waiting for it to go")
        return backtest_status(sets, [], None, spec.rank, problem)
    if job is None:
        loop = asyncio.get_running_loop()
        wanted = backtest_job(meta, spec, stack)
        try:
            await loop.run_in_executor(runtime.status_pool, apply, runtime.kube, wanted)
        except KubeError as error:
            return backtest_status(sets, [], None, spec.rank, ("JobRefused", f"Job {name}: {error.message}"))
        log.info("Backtest %s/%s: started Job %s with %d parameter sets", namespace, name, name, len(sets))
        return backtest_status(sets, [], None, spec.rank)
    results = await _results(runtime, stack, run_id(meta))
    return backtest_status(sets, results, job, spec.rank)


async def refresh(runtime: Runtime, state: Backtests, key: Key) -> None:
    body = state.bodies.get(key)
    if body is None or body["metadata"].get("deletionTimestamp"):
        return
    old = state.written.get(key) or body.get("status") or {}
    if old.get("phase") in FINISHED and old.get("observedGeneration") == body["metadata"].get("generation"):
        return  # a finished run does not change
    new = await observe(runtime, body)
    new["observedGeneration"] = body["metadata"].get("generation", 1)
    new["conditions"] = merge_conditions(
        old.get("conditions"), new["conditions"], datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    )
    if new == old or not await write_status(runtime, PLURAL, key, old, new):
        return
    state.written[key] = new
    if old.get("phase") != new["phase"]:
        log.info("Backtest %s/%s is %s: %s", *key, new["phase"], new["conditions"][0]["message"])
