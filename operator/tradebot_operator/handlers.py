"""kopf handlers: reconcile stacks, repair their children, keep the status loop running.

- create/update/resume: build every child (pure builders), server-side apply each,
  delete owned children no longer wanted (the old market-data service), poke the status.
- child events (Deployments, StatefulSets, Services, ConfigMaps, Secrets we manage):
  a child deleted or edited by hand is applied again from its stack's spec.
- no deletion handler and no timer, so kopf adds no finalizer: owner references let
  the garbage collector remove everything when a stack is deleted.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
from collections.abc import Mapping
from typing import Any

import kopf

from tradebot_operator import GROUP, KIND, MANAGED_BY, PLURAL, VERSION
from tradebot_operator.apply import CHILD_KINDS, apply, get, owned_children, prune
from tradebot_operator.builders import Stack, build_children
from tradebot_operator.builders.config import db_secret_name, generate_password, password_from_secret
from tradebot_operator.health import Problem
from tradebot_operator.kube import KubeError, connection_info
from tradebot_operator.runtime import Runtime, StackKey
from tradebot_operator.status import status_loop

registry = kopf.OperatorRegistry()
STACKS = (GROUP, VERSION, PLURAL)
GENERATION_KINDS = ("Deployment", "StatefulSet")  # kinds whose spec edits bump metadata.generation


def _runtime(memo: Any) -> Runtime:
    return memo.runtime


# --------------------------------------------------------------------------- operator lifecycle


@kopf.on.login(registry=registry)
def login(memo: Any, **_: Any) -> kopf.ConnectionInfo:
    return connection_info(_runtime(memo).kube.api.configuration)


@kopf.on.startup(registry=registry)
async def start_status_loop(memo: Any, **_: Any) -> None:
    memo.status_task = asyncio.create_task(status_loop(_runtime(memo)), name="tradebot-status")


@kopf.on.cleanup(registry=registry)
async def stop_status_loop(memo: Any, **_: Any) -> None:
    task = getattr(memo, "status_task", None)
    if task is not None:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    await _runtime(memo).close()


# --------------------------------------------------------------------------- stacks


def _snapshot(body: Mapping[str, Any]) -> dict[str, Any]:
    return copy.deepcopy({k: body[k] for k in ("metadata", "spec", "status") if k in body})


@kopf.on.event(*STACKS, registry=registry)
async def track_stack(type: str | None, body: Any, namespace: str, name: str, memo: Any, **_: Any) -> None:
    """Keep the latest body of every stack for the status loop and the child handlers."""
    runtime = _runtime(memo)
    if type == "DELETED":
        await runtime.forget((namespace, name))
    else:
        runtime.stacks[(namespace, name)] = _snapshot(body)


def _password(runtime: Runtime, stack: Stack) -> str:
    """The stack's database password: remembered, else read from its Secret, else new."""
    if stack.uid not in runtime.passwords:
        existing = get(runtime.kube, "Secret", stack.namespace, db_secret_name(stack))
        runtime.passwords[stack.uid] = password_from_secret(existing) or generate_password()
    return runtime.passwords[stack.uid]


def _apply(runtime: Runtime, obj: Mapping[str, Any]) -> str:
    """Apply one child; its resourceVersion afterwards (unchanged when it already matched)."""
    result = apply(runtime.kube, obj)
    meta = result["metadata"]
    if obj["kind"] in GENERATION_KINDS:
        runtime.applied_generation[(obj["kind"], meta["namespace"], meta["name"])] = meta["generation"]
    return meta["resourceVersion"]


def _reconcile(runtime: Runtime, stack: Stack) -> list[str]:
    children = build_children(stack, _password(runtime, stack))
    for obj in children:
        _apply(runtime, obj)
    return prune(runtime.kube, owned_children(runtime.kube, stack.namespace, stack.name, stack.uid), children)


@kopf.on.resume(*STACKS, registry=registry)
@kopf.on.create(*STACKS, registry=registry)
@kopf.on.update(*STACKS, registry=registry)
async def reconcile(body: Any, namespace: str, name: str, memo: Any, logger: Any, **_: Any) -> None:
    runtime = _runtime(memo)
    key: StackKey = (namespace, name)
    runtime.stacks[key] = _snapshot(body)
    stack = Stack.from_body(body)
    async with runtime.lock(key):
        try:
            removed = await asyncio.to_thread(_reconcile, runtime, stack)
        except KubeError as error:
            runtime.apply_errors[key] = Problem("ApplyFailed", error.message)
            runtime.poke(key)
            raise kopf.TemporaryError(f"applying the children failed: {error}", delay=10) from None
    runtime.apply_errors.pop(key, None)
    runtime.reconciled[key] = body["metadata"]["generation"]
    runtime.poke(key)
    logger.info(
        "applied generation %s%s", body["metadata"]["generation"], f"; removed {removed}" if removed else ""
    )


# --------------------------------------------------------------------------- children


def _controller(meta: Mapping[str, Any]) -> Mapping[str, Any] | None:
    for ref in meta.get("ownerReferences") or ():
        if ref.get("kind") == KIND and ref.get("controller") and ref.get("apiVersion", "").startswith(GROUP):
            return ref
    return None


def _stack_alive(runtime: Runtime, namespace: str, owner: Mapping[str, Any]) -> bool:
    """Ask the API server: a child deleted by the garbage collector must not come back."""
    path = f"/apis/{GROUP}/{VERSION}/namespaces/{namespace}/{PLURAL}/{owner['name']}"
    try:
        live = runtime.kube.request("GET", path)
    except KubeError as error:
        if error.status == 404:
            return False
        raise
    return live["metadata"]["uid"] == owner["uid"] and not live["metadata"].get("deletionTimestamp")


def _restore(runtime: Runtime, key: StackKey, child: Mapping[str, Any], deleted: bool) -> bool:
    """Apply one child again from its stack's spec; whether that changed it (a hand edit undone)."""
    kind, name = child["kind"], child["metadata"]["name"]
    body = runtime.stacks.get(key)
    if body is None or body["metadata"].get("deletionTimestamp"):
        return False
    stack = Stack.from_body(body)
    wanted = [
        o
        for o in build_children(stack, _password(runtime, stack))
        if (o["kind"], o["metadata"]["name"]) == (kind, name)
    ]
    if not wanted or (deleted and not _stack_alive(runtime, key[0], {"name": key[1], "uid": stack.uid})):
        return False
    return _apply(runtime, wanted[0]) != child["metadata"].get("resourceVersion")


async def repair_child(type: str | None, body: Any, memo: Any, logger: Any, **_: Any) -> None:
    """A child changed or vanished: apply it again unless the change was ours or its stack is going."""
    if type is None:  # the initial listing: the resume handlers re-apply every stack anyway
        return
    runtime = _runtime(memo)
    meta, kind = body["metadata"], body.get("kind", "")
    owner = _controller(meta)
    if owner is None:
        return
    key: StackKey = (meta["namespace"], owner["name"])
    stack_body = runtime.stacks.get(key)
    if (
        stack_body is None
        or stack_body["metadata"].get("uid") != owner["uid"]
        or key not in runtime.reconciled
    ):
        return
    deleted = type == "DELETED"
    seen = runtime.applied_generation.get((kind, meta["namespace"], meta["name"]))
    if not deleted and kind in GENERATION_KINDS and seen == meta.get("generation"):
        runtime.poke(key)  # a status update (pods became ready, say): the stack's status follows now
        return
    async with runtime.lock(key):
        restored = await asyncio.to_thread(_restore, runtime, key, body, deleted)
    if restored:
        logger.info("restored %s %s (%s by hand)", kind, meta["name"], "deleted" if deleted else "edited")
        runtime.poke(key)


for _kind, (_api_version, _plural) in CHILD_KINDS.items():
    kopf.on.event(
        _api_version, _plural, labels={"app.kubernetes.io/managed-by": MANAGED_BY}, registry=registry
    )(repair_child)
