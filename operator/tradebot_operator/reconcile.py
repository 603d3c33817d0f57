"""One reconcile of one stack: every child applied (or left alone when it is as built), all reported.

Runs in a worker thread. A child the API server refuses does not stop the others; each
failure is returned with the server's message for the conditions. Children are compared
with the watch cache first, so a periodic resync of an unchanged stack costs no request.
Claims are grown in place (the StatefulSet is then recreated around its running pod,
since its claim template cannot change) and owned by the stack unless it retains them.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from tradebot_operator.apply import (
    apply,
    child_key,
    describe,
    get,
    orphan_and_wait,
    patch,
    prune,
)
from tradebot_operator.builders import Stack, StackAccess, build_children
from tradebot_operator.builders.access import (
    AUTH_TOKEN,
    REDIS_PASSWORD,
    auth_secret_name,
    generate_secret,
    secret_value,
)
from tradebot_operator.builders.common import Obj
from tradebot_operator.builders.config import config_name, db_secret_name, password_from_secret
from tradebot_operator.builders.storage import claim_owner_patch, template_size
from tradebot_operator.builders.strategy import reshard_refusal, running_tick_shards
from tradebot_operator.drift import foreign_drift, matches
from tradebot_operator.health import Problem
from tradebot_operator.kube import KubeError
from tradebot_operator.runtime import Runtime, StackKey
from tradebot_operator.spec import InvalidSpec, quantity

GENERATION_KINDS = ("Deployment", "StatefulSet")  # kinds whose spec edits bump metadata.generation


@dataclass
class Outcome:
    generation: int
    problems: dict[str, Problem] = field(default_factory=dict)
    applied: list[str] = field(default_factory=list)
    repaired: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)

    def summary(self) -> str:
        parts = [f"applied {', '.join(self.applied) or 'nothing'}"]
        parts += [f"repaired {', '.join(self.repaired)}"] if self.repaired else []
        parts += [f"removed {', '.join(self.removed)}"] if self.removed else []
        parts += (
            [f"problems: {'; '.join(p.message for p in self.problems.values())}"] if self.problems else []
        )
        return "; ".join(parts)


def _secret(runtime: Runtime, stack: Stack, name: str) -> dict[str, Any] | None:
    key = ("Secret", stack.namespace, name)
    return runtime.children.get(key) or get(runtime.kube, *key)


def password(runtime: Runtime, stack: Stack) -> str:
    """The stack's database password: remembered, else read from its Secret, else new."""
    if stack.uid not in runtime.passwords:
        existing = _secret(runtime, stack, db_secret_name(stack))
        runtime.passwords[stack.uid] = password_from_secret(existing) or generate_secret()
    return runtime.passwords[stack.uid]


def stack_access(runtime: Runtime, stack: Stack) -> StackAccess:
    """The stack's credentials: the database password (it is baked into the data, so remembered),
    and AUTH_TOKEN and the Redis password as `<stack>-auth` holds them now (set them there to
    bring your own, delete the Secret to rotate both), else new."""
    auth = _secret(runtime, stack, auth_secret_name(stack))
    access = StackAccess(
        password(runtime, stack),
        secret_value(auth, REDIS_PASSWORD) or generate_secret(),
        secret_value(auth, AUTH_TOKEN) or generate_secret(),
        runtime.config.lease_namespace,
    )
    runtime.redis_passwords[(stack.namespace, stack.name)] = access.redis_password
    return access


def _apply(runtime: Runtime, obj: Obj) -> None:
    result = apply(runtime.kube, obj)
    if obj["kind"] in GENERATION_KINDS:
        runtime.applied_generation[child_key(obj)] = result["metadata"]["generation"]


def _grow(runtime: Runtime, stack: Stack, wanted: Obj, live: dict[str, Any]) -> str | None:
    """Grow the claims of a StatefulSet whose template asks for more; why not, if it cannot."""
    old, new = template_size(live), template_size(wanted)
    if old is None or new is None or quantity(new) == quantity(old):
        return None
    if quantity(new) < quantity(old):
        return f"{describe(child_key(wanted))}: its claims are {old}; a volume cannot shrink to {new}"
    component = wanted["metadata"]["labels"]["app.kubernetes.io/component"]
    for claim in runtime.stack_children((stack.namespace, stack.name)):
        labels = claim["metadata"].get("labels") or {}
        if claim["kind"] != "PersistentVolumeClaim" or labels.get("app.kubernetes.io/component") != component:
            continue
        requested = claim["spec"]["resources"]["requests"]["storage"]
        if quantity(str(requested)) >= quantity(new):
            continue
        body = {"spec": {"resources": {"requests": {"storage": new}}}}
        patch(runtime.kube, child_key(claim), body, "application/merge-patch+json")
    # The claim template cannot change: recreate the StatefulSet around its pod and claims.
    orphan_and_wait(runtime.kube, child_key(wanted), live["metadata"]["uid"])
    runtime.children.pop(child_key(wanted), None)
    return None


def _converge(runtime: Runtime, stack: Stack, wanted: Obj, outcome: Outcome) -> None:
    key = child_key(wanted)
    live = runtime.children.get(key)
    if live is not None and wanted["kind"] == "StatefulSet":
        problem = _grow(runtime, stack, wanted, live)
        if problem:
            outcome.problems[describe(key)] = Problem("ResizeRefused", problem)
            return
        live = runtime.children.get(key)
    drift = foreign_drift(wanted, live) if live is not None else []
    if live is not None and not drift and matches(wanted, live):
        return
    if drift:
        patch(runtime.kube, key, drift, "application/json-patch+json")
        outcome.repaired.append(describe(key))
        runtime.metrics.repairs.add(1, {"kind": key[0]})
    _apply(runtime, wanted)
    outcome.applied.append(describe(key))


def _adopt_claims(runtime: Runtime, stack: Stack) -> None:
    """The stack owns its stores' claims (they follow it to the garbage collector) unless Retain."""
    for claim in runtime.stack_children((stack.namespace, stack.name)):
        if claim["kind"] == "PersistentVolumeClaim" and claim["metadata"].get("deletionTimestamp") is None:
            body = claim_owner_patch(stack, claim)
            if body is not None:
                patch(runtime.kube, child_key(claim), body, "application/strategic-merge-patch+json")


def _owned(runtime: Runtime, stack: Stack) -> list[dict[str, Any]]:
    return [
        obj
        for obj in runtime.stack_children((stack.namespace, stack.name))
        if any(
            o.get("uid") == stack.uid and o.get("controller")
            for o in obj["metadata"].get("ownerReferences") or []
        )
    ]


def reconcile(runtime: Runtime, key: StackKey) -> Outcome:
    """Bring one stack's children to its spec; never raises for one child's refusal."""
    body = runtime.stacks[key]
    outcome = Outcome(generation=body["metadata"].get("generation", 1))
    started = time.monotonic()
    try:
        stack = Stack.from_body(body)
    except InvalidSpec as error:
        outcome.problems["spec"] = Problem("InvalidSpec", str(error))
        runtime.metrics.reconciles.add(1, {"result": "invalid"})
        return outcome
    live_config = runtime.children.get(("ConfigMap", stack.namespace, config_name(stack)))
    refusal = reshard_refusal(stack, running_tick_shards(body.get("status"), live_config))
    if refusal:
        outcome.problems["spec"] = Problem("TickShardsChanged", refusal)
        runtime.metrics.reconciles.add(1, {"result": "invalid"})
        return outcome
    children = build_children(stack, stack_access(runtime, stack))
    for wanted in children:
        try:
            _converge(runtime, stack, wanted, outcome)
        except KubeError as error:
            outcome.problems[describe(child_key(wanted))] = Problem(
                "ApplyFailed", f"{describe(child_key(wanted))}: {error.message}"
            )
            runtime.metrics.apply_errors.add(1, {"kind": wanted["kind"]})
    try:
        _adopt_claims(runtime, stack)
    except KubeError as error:
        outcome.problems["claims"] = Problem("ApplyFailed", f"owning the claims: {error.message}")
    try:
        outcome.removed = prune(runtime.kube, _owned(runtime, stack), children)
    except KubeError as error:
        outcome.problems["prune"] = Problem("ApplyFailed", f"removing old children: {error.message}")
    result = "ok" if not outcome.problems else "failed"
    runtime.metrics.reconciles.add(1, {"result": result})
    runtime.metrics.reconcile_seconds.record(time.monotonic() - started)
    return outcome
